"""Another revision's renderer (``worker/render/renderer.py`` and the modules in ``OWN``
at a git ref, ``main`` by default), loaded beside the working tree's in the same process.

The machine is shared and its load swings by multiples within minutes, so a cost is
only meaningful as a ratio against a baseline timed in the same process, interleaved
with it: ``bench.render`` reports the model's per-frame cost against today's renderer.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _source(ref: str, path: str) -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"],
                          capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def load(ref: str = "main") -> ModuleType | None:
    """The ref's renderer module (its own compiled kernel and framing), or None if git
    has no such ref."""
    own = {name: _source(ref, f"worker/render/{name}.py") for name in OWN}
    renderer = _source(ref, "worker/render/renderer.py")
    if renderer is None or own["kernel"] is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="protoface-baseline-"))
    for name, text in own.items():
        if text is not None:
            (folder / f"baseline_{name}.py").write_text(text)
    # Its renderer imports its own kernel, framing, fields, sharpness and lip line;
    # everything else (rig, eyes, the face analysis) is shared with the working tree.
    renderer = re.sub(r"^from protoface\.worker\.render import (.+)$",
                      lambda m: _imports(m.group(1), own), renderer, count=1, flags=re.M)
    (folder / "baseline_renderer.py").write_text(renderer)
    sys.path.insert(0, str(folder))
    return importlib.import_module("baseline_renderer")


# The modules a baseline brings of its own.
OWN = ("kernel", "framing", "fields", "sharpness", "mouth")


def _imports(names: str, own: dict[str, str | None]) -> str:
    lines = []
    for name in (n.strip() for n in names.split(",")):
        if own.get(name) is not None:
            lines.append(f"import baseline_{name} as {name}")
        else:
            lines.append(f"from protoface.worker.render import {name}")
    return "\n".join(lines)
