"""Another revision's renderer (``worker/render/renderer.py`` and ``kernel.py`` at a git
ref, ``main`` by default), loaded beside the working tree's in the same process.

The machine is shared and its load swings by multiples within minutes, so a cost is
only meaningful as a ratio against a baseline timed in the same process, interleaved
with it: ``bench.render`` reports the model's per-frame cost against today's renderer.
"""

from __future__ import annotations

import importlib
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
    """The ref's renderer module (its own compiled kernel), or None if git has no such ref."""
    renderer, kernel = (_source(ref, f"worker/render/{name}.py") for name in ("renderer", "kernel"))
    if renderer is None or kernel is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="protoface-baseline-"))
    (folder / "baseline_kernel.py").write_text(kernel)
    # Its renderer imports its own kernel; everything else (rig, features) is shared.
    (folder / "baseline_renderer.py").write_text(renderer.replace(
        "from protoface.worker.render import kernel", "import baseline_kernel as kernel"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("baseline_renderer")
