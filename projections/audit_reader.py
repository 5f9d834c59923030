"""The audit export's reader process, started by :mod:`projections.audit_parts`:

    python -m projections.audit_reader FIRST LAST PART_FILE   (the NATS URL on stdin)

The URL comes on stdin, not the command line, where any user could read credentials.
"""

import sys


def run() -> int:
    url = sys.stdin.readline().strip()
    # nats-py imports aiohttp for its WebSocket transport: half of this process's startup,
    # which counts in the export's time. A reader of nats:// URLs does
    # without it (nats-py then treats aiohttp as not installed).
    if not any(u.strip().startswith(("ws://", "wss://")) for u in url.split(",")):
        sys.modules.setdefault("aiohttp", None)  # type: ignore[arg-type]
    from protoface.projections.audit_parts import main

    return main(url, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
