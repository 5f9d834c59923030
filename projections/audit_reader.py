"""The audit export's reader process, started by :mod:`projections.audit_parts`:

    python -m projections.audit_reader NATS_URL FIRST LAST PART_FILE
"""

import sys

# nats-py imports aiohttp for its WebSocket transport: half of this process's startup
# (~0.15 s of CPU), which counts in the export's time. A reader of nats:// URLs does
# without it (nats-py then treats aiohttp as not installed).
if not any(url.strip().startswith(("ws://", "wss://")) for url in sys.argv[1].split(",")):
    sys.modules.setdefault("aiohttp", None)  # type: ignore[arg-type]

from projections.audit_parts import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
