"""``protoface audit``: export the log to DuckDB, verify the projections, report.

    protoface audit export --out audit.duckdb [--nats-url …] [--readers N] [--progress]
    protoface audit verify [--nats-url …] [--api-url …] [--wait SECONDS] [--progress]
    protoface audit report [--nats-url …] [--db audit.duckdb] [--readers N] [--progress]

Exit status of ``verify``: 1 when any projection's snapshot differs from its rebuild
(the first few differences are printed), else 0. It first asks the running API
processes to save their live read models, so a deployment of any age is verified;
with no snapshot and no API process running, each model is rebuilt from the log
alone (and must fold without error).
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from protoface.api.serving import run as run_loop
from protoface.progress import ProgressBar, progress_bar
from protoface.projections.verify import Check, verify_live
from protoface.streams.eventlog import EventLog
from protoface.streams.snapshots import SnapshotStore


def add_commands(commands: Any, default_nats_url: str) -> None:
    """Register ``audit`` and its subcommands on the top-level parser's subparsers."""
    audit_ = commands.add_parser("audit", help="export, verify and report on the event log")
    sub = audit_.add_subparsers(required=True, metavar="COMMAND")

    export = sub.add_parser("export", help="replay the whole log into a DuckDB file")
    export.add_argument("--out", type=Path, required=True, help="the .duckdb file to write")
    _nats_url_arg(export, default_nats_url)
    _readers_arg(export)
    _progress_arg(export)
    export.set_defaults(run=_export)

    check = sub.add_parser(
        "verify", help="rebuild every projection from sequence 1 and diff it against the "
                       "live read models (saved on request by a running API)")
    _nats_url_arg(check, default_nats_url)
    check.add_argument("--api-url", default=None,
                       help="also show how far this API's projections have applied the log "
                            "(default: not shown)")
    check.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                       help="how long to wait for a running API process to save its live "
                            "read models before comparing")
    _progress_arg(check)
    check.set_defaults(run=_verify)

    report = sub.add_parser("report", help="time to first frame, outcomes, billable minutes")
    _nats_url_arg(report, default_nats_url)
    report.add_argument("--db", type=Path, default=None,
                        help="report from this export instead of replaying the log "
                             "(default: replay the log in memory)")
    _readers_arg(report)
    _progress_arg(report)
    report.set_defaults(run=_report)


def _nats_url_arg(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--nats-url", default=default,
                        help="the NATS server holding the event log")


def _readers_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--readers", type=_positive, default=None, metavar="N",
        help="processes reading the log at once, each a range of it (default: one per core, "
             "at most one per 100,000 events)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action="store_true",
                        help="show a progress bar on stderr even when it is not a terminal")


def _bar(args: argparse.Namespace, label: str) -> ProgressBar | None:
    return progress_bar(label, forced=args.progress)


def _export(args: argparse.Namespace) -> int:
    # DuckDB is loaded by the audit commands only: every other command (``up``, ``api``,
    # ``worker``) imports this module to build its parser.
    from protoface.projections import audit

    bar = _bar(args, "audit export")

    async def run() -> audit.Exported:
        log = await EventLog.connect(args.nats_url, name="protoface-audit")
        try:
            return await audit.export_file(log, args.out, progress=bar, readers=args.readers)
        finally:
            await log.close()

    try:
        done = run_loop(run())
    finally:
        if bar is not None:
            bar.close()
    readers = f"{done.readers} readers" if done.readers > 1 else "1 reader"
    print(f"exported {done.events:,} events (to sequence {done.last_seq:,}) into {args.out} "
          f"in {done.seconds:.1f} s ({done.rate:,.0f} events/s, {readers})")
    return 0


def _report(args: argparse.Namespace) -> int:
    import duckdb

    from protoface.projections import audit

    if args.db is not None:
        con = duckdb.connect(str(args.db), read_only=True)
    else:
        con = duckdb.connect()
        bar = _bar(args, "audit replay")

        async def run() -> None:
            log = await EventLog.connect(args.nats_url, name="protoface-audit")
            try:
                await audit.export(log, con, progress=bar, readers=args.readers)
            finally:
                await log.close()

        try:
            run_loop(run())
        finally:
            if bar is not None:
                bar.close()
    try:
        print(audit.report(con))
    finally:
        con.close()
    return 0


def _verify(args: argparse.Namespace) -> int:
    bar = _bar(args, "audit verify")

    async def run() -> tuple[bool, list[Check], int]:
        log = await EventLog.connect(args.nats_url, name="protoface-audit")
        try:
            saved, checks = await verify_live(log, await SnapshotStore.open(log), wait=args.wait,
                                              progress=bar)
            return saved, checks, await log.last_seq()
        finally:
            await log.close()

    try:
        saved, checks, end = run_loop(run())
    finally:
        if bar is not None:
            bar.close()
    print(f"event log: {end:,} events")
    print("live read models: saved just now by a running API process" if saved else
          f"live read models: no running API process saved them (none runs, none answered "
          f"within {args.wait:g} s, or its save failed); comparing the last saved snapshots")
    if args.api_url is not None:
        print(_api_position(args.api_url, end))
    for check in checks:
        _print_check(check)
    return _verdict(checks)


def _print_check(check: Check) -> None:
    if check.ok and not check.compared:
        print(f"{check.name}: {check.note}")
    elif check.ok:
        print(f"{check.name}: snapshot at sequence {check.snapshot_seq:,} equals a rebuild "
              f"from sequence 1")
    else:
        at = f" at sequence {check.snapshot_seq:,}" if check.snapshot_seq is not None else ""
        print(f"{check.name}: snapshot{at} DIFFERS from a rebuild from sequence 1 "
              f"({check.total:,} difference{'s' if check.total != 1 else ''}):")
        for line in check.differences:
            print(f"  {line}")
        if check.total > len(check.differences):
            print(f"  … and {check.total - len(check.differences):,} more")


def _verdict(checks: list[Check]) -> int:
    """Exit 1 on any difference; 0 otherwise, however young the deployment (a kind with
    nothing live to compare was still rebuilt from the log without error)."""
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"verify: FAILED ({len(failed)} of {len(checks)} projections differ)")
        return 1
    if not any(c.compared for c in checks):
        print("verify: OK (rebuilt from the log; no snapshot and no running API process "
              "to compare with)")
        return 0
    print("verify: OK")
    return 0


def _api_position(api_url: str, end: int) -> str:
    """The API's ``protoface_projection_applied_seq`` (its live models' position)."""
    url = api_url.rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return f"api {api_url}: unreachable ({exc})"
    for line in text.splitlines():
        if line.startswith("protoface_projection_applied_seq "):
            applied = int(float(line.split()[1]))
            return (f"api {api_url}: its projections have applied sequence {applied:,} "
                    f"({max(end - applied, 0):,} behind the log)")
    return f"api {api_url}: no protoface_projection_applied_seq in /metrics"
