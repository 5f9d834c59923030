"""The ``protoface`` command line.

    protoface up [--host 127.0.0.1] [--port 8000] [--nats-port 4222] [--data-dir .protoface]
    protoface api [--nats-url …] [--host …] [--port …] [--data-dir …]
    protoface worker [--nats-url …] [--slots N] [--capacity lite=24,…] [--data-dir …]
    protoface supervisor [--nats-url …]
    protoface webhooks [--nats-url …] [--data-dir …]
    protoface keys create --org NAME --plan free|starter|launch|scale [--nats-url …]
    protoface credits grant --org NAME --credits N [--nats-url …]
    protoface audit export --out audit.duckdb | verify [--api-url …] | report [--db …]
    protoface render --avatar av_stock_001 --audio speech.wav [--quality standard] -o out.mp4
                     [--strip strip.png] [--seed N] [--progress]

Every option's ``--help`` line gives its default. Long work (audit export, verify and
report, render) draws a progress bar on stderr when it is a terminal, or with
``--progress``; piped, it stays quiet.

``up`` runs the API, the projections, a worker and the supervisor in one process
on an embedded NATS; in production each runs as many times as needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import prometheus_client

from protoface import audit
from protoface.api import logs
from protoface.api.app import create_app
from protoface.api.avatars.schemas import avatar_view
from protoface.api.config import WEBHOOK_ALLOW_PRIVATE, Settings, load_keyring
from protoface.api.platform import operator
from protoface.api.platform.orgs import create_key, grant_credits
from protoface.api.services import Services
from protoface.api.serving import run as run_loop
from protoface.api.serving import server as http_server
from protoface.api.sessions.schemas import session_view
from protoface.domain.avatar import STOCK_AVATARS
from protoface.domain.capacity import parse_pinned
from protoface.domain.errors import Rejected
from protoface.domain.plans import PLANS
from protoface.domain.sealing import Keyring
from protoface.domain.tiers import TIERS
from protoface.progress import progress_bar
from protoface.projections import snapshots
from protoface.projections.runner import Projector
from protoface.projections.sessions import SessionsModel
from protoface.projections.usage import UsageModel
from protoface.projections.webhooks.dispatcher import (
    Dispatcher,
    DispatchSettings,
    dispatch_while_holding,
)
from protoface.streams.avatars import AvatarStore
from protoface.streams.eventlog import EventLog, LogUnavailable
from protoface.streams.lease import webhook_dispatcher_lease
from protoface.streams.server import EmbeddedNats
from protoface.streams.snapshots import SnapshotStore
from protoface.worker import realtime
from protoface.worker.runtime import Worker, WorkerSettings
from protoface.worker.supervisor import Supervisor

log = logging.getLogger("protoface")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(Settings.from_env().log_level)
    return int(args.run(args) or 0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: …)`` after an option's help, except where there is nothing to
    show: a required option, a flag, or a None default (whose help says what happens
    instead, e.g. "default: each plan's limit")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every parser of the command, subcommands included (``add_subparsers`` makes them
    of the parent's class), shows option defaults in its ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="protoface", description="Protoface avatar service")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _up_command(commands)
    _api_command(commands)
    _worker_command(commands)
    _supervisor_command(commands)
    _webhooks_command(commands)
    _keys_command(commands)
    _credits_command(commands)
    audit.add_commands(commands, DEFAULT_NATS_URL)
    _render_command(commands)
    _avatar_command(commands)
    return parser


def _up_command(commands: Any) -> None:
    up = commands.add_parser("up", help="run everything locally on an embedded NATS")
    _serve_args(up)
    up.add_argument("--nats-port", type=int, default=4222, help="port of the embedded NATS")
    up.add_argument("--nats-url", default=None,
                    help="use this NATS instead of starting one (default: start one)")
    _worker_args(up)
    up.set_defaults(run=_up)


def _api_command(commands: Any) -> None:
    api = commands.add_parser("api", help="run the HTTP API against an existing NATS")
    _serve_args(api)
    _nats_url_arg(api)
    api.set_defaults(run=_api)


def _worker_command(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run a worker against an existing NATS")
    _nats_url_arg(worker)
    _data_dir_arg(worker)
    _heartbeat_arg(worker)
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="serve this worker's Prometheus metrics on this port "
                             "(default: not served)")
    _worker_args(worker)
    worker.set_defaults(run=_worker)


def _supervisor_command(commands: Any) -> None:
    supervisor = commands.add_parser("supervisor", help="fail sessions of lost workers")
    _nats_url_arg(supervisor)
    _heartbeat_arg(supervisor)
    supervisor.set_defaults(run=_supervisor)


def _webhooks_command(commands: Any) -> None:
    webhooks = commands.add_parser("webhooks", help="deliver webhooks (run one)")
    _nats_url_arg(webhooks)
    _data_dir_arg(webhooks)
    webhooks.set_defaults(run=_webhooks)


def _keys_command(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage API keys")
    create = keys.add_subparsers(required=True, metavar="COMMAND").add_parser(
        "create", help="create an API key (and the org if new)")
    create.add_argument("--org", required=True, help="the org's name (created if new)")
    create.add_argument("--plan", required=True, choices=sorted(PLANS),
                        help="the org's plan when it is created")
    _nats_url_arg(create)
    create.set_defaults(run=_keys_create)


def _credits_command(commands: Any) -> None:
    credits = commands.add_parser("credits", help="manage credits")
    grant = credits.add_subparsers(required=True, metavar="COMMAND").add_parser(
        "grant", help="add credits to an org's balance")
    grant.add_argument("--org", required=True, help="the org's name")
    grant.add_argument("--credits", type=int, required=True,
                       help="credits to add (1 credit = 1 session minute)")
    _nats_url_arg(grant)
    grant.set_defaults(run=_credits_grant)


def _avatar_command(commands: Any) -> None:
    avatar = commands.add_parser("avatar", help="try portraits before uploading them")
    inspect = avatar.add_subparsers(required=True, metavar="COMMAND").add_parser(
        "inspect", help="draw the face analysis over a portrait and print the verdict")
    inspect.add_argument("image", type=Path, help="a PNG or JPEG portrait")
    inspect.add_argument("-o", "--out", type=Path, required=True,
                         help="the overlay PNG to write (mesh, irises, mask, plate, pose)")
    inspect.set_defaults(run=_avatar_inspect)


def _render_command(commands: Any) -> None:
    render = commands.add_parser("render", help="render an avatar speaking a WAV to an MP4")
    face = render.add_mutually_exclusive_group(required=True)
    face.add_argument("--avatar",
                      help="a stock avatar (av_stock_001) or a ready custom one (from NATS); "
                           "this or --portrait (default: none)")
    face.add_argument("--portrait", type=Path,
                      help="a portrait file, built exactly as an upload would be "
                           "(default: none)")
    render.add_argument("--audio", type=Path, required=True, help="speech (WAV; any rate)")
    render.add_argument("--quality", choices=sorted(TIERS), default="standard",
                        help="quality tier: frame size and rate, and the model")
    render.add_argument("-o", "--out", type=Path, required=True, help="the MP4 to write")
    render.add_argument("--strip", type=Path, default=None,
                        help="also write a PNG of the most closed and most open frames "
                             "(default: none)")
    render.add_argument("--seed", type=int, default=None,
                        help="blinks, head motion and gaze (default: from the avatar id)")
    render.add_argument("--nats-url", default=DEFAULT_NATS_URL,
                        help="where a custom avatar's built asset is (stock ones need none)")
    render.add_argument("--progress", action="store_true",
                        help="show a progress bar on stderr even when it is not a terminal")
    render.set_defaults(run=_render)


def _nats_url_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", default=DEFAULT_NATS_URL,
                        help="the NATS server (comma-separated URLs for a cluster)")


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(".protoface"),
                        help="where the sealing keys are (seal-keys.json, unless "
                             "PROTOFACE_SEAL_KEYS_FILE names another file)")


def _heartbeat_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heartbeat-seconds", type=float, default=None,
                        help="how often workers report; liveness is judged on it "
                             "(default: PROTOFACE_HEARTBEAT_SECONDS, else 5)")


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address the HTTP API listens on")
    parser.add_argument("--port", type=int, default=8000, help="port the HTTP API listens on")
    parser.add_argument("--data-dir", type=Path, default=Path(".protoface"),
                        help="sealing keys and local state (for up: the dev API key, the "
                             "operator key and the embedded NATS's files)")
    parser.add_argument("--create-rate-per-minute", type=int, default=None,
                        help="session creates per minute per key, for every plan "
                             "(default: PROTOFACE_CREATE_RATE_PER_MINUTE, else each plan's)")
    parser.add_argument("--when-at-capacity", choices=("reject", "queue"), default=None,
                        help="with no free worker slot, answer 503 at_capacity or queue the "
                             "session (default: PROTOFACE_WHEN_AT_CAPACITY, else reject)")
    parser.add_argument("--public-url", default=None,
                        help="base URL clients reach this API at, for relay media URLs "
                             "(default: PROTOFACE_PUBLIC_URL, else the request's own)")
    _heartbeat_arg(parser)


def _worker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int, default=64,
                        help="at most this many sessions at once (cost decides below it)")
    parser.add_argument("--capacity", type=parse_pinned, default={},
                        metavar="TIER=SESSIONS,…",
                        help="sessions of a tier that fill this worker, instead of the "
                             "probe at start (e.g. lite=24,standard=8,pro=3)")


def _settings(args: argparse.Namespace, nats_url: str) -> Settings:
    return Settings.from_env(
        nats_url=nats_url, host=getattr(args, "host", None), port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        create_rate_per_minute=getattr(args, "create_rate_per_minute", None),
        when_at_capacity=getattr(args, "when_at_capacity", None),
        public_url=getattr(args, "public_url", None),
        heartbeat_seconds=getattr(args, "heartbeat_seconds", None),
        worker_slots=getattr(args, "slots", None),
    )


def _up(args: argparse.Namespace) -> int:
    nats_server: EmbeddedNats | None = None
    nats_url = args.nats_url
    if nats_url is None:
        nats_server = EmbeddedNats(
            port=args.nats_port, store_dir=args.data_dir / "jetstream",
            log_file=args.data_dir / "nats-server.log",
        )
        args.data_dir.mkdir(parents=True, exist_ok=True)
        nats_server.start()
        nats_url = nats_server.url
        log.info("embedded nats-server started", extra={"url": nats_url})
    realtime.prepare()  # this process runs a worker too
    try:
        return run_loop(_serve(_up_settings(args, nats_url), create_keys=True, everything=True,
                               pinned=args.capacity))
    finally:
        if nats_server is not None:
            nats_server.stop()
            log.info("embedded nats-server stopped")


def _up_settings(args: argparse.Namespace, nats_url: str) -> Settings:
    """``up``'s settings. The private-address guard on webhook URLs is an SSRF defence for
    an API others can reach; ``up`` bound to loopback has no such callers, and a developer's
    receiver is on this machine: there it may deliver to loopback (and private) addresses,
    and says so once. ``api`` keeps the guard (see ``_settings``)."""
    settings = _settings(args, nats_url)
    local = (not settings.production and _is_loopback(settings.host)
             and WEBHOOK_ALLOW_PRIVATE not in os.environ)  # set, the variable decides
    if local:
        settings = dataclasses.replace(settings, webhook_allow_private=True)
    if settings.webhook_allow_private:
        reason = f"up listens on loopback ({settings.host})" if local else WEBHOOK_ALLOW_PRIVATE
        log.info("webhooks may be delivered to loopback and private addresses",
                 extra={"reason": reason})
    return settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another name: it may resolve to anything
        return False


def _api(args: argparse.Namespace) -> int:
    return run_loop(_serve(_settings(args, args.nats_url), create_keys=False))


def _worker(args: argparse.Namespace) -> int:
    settings = _settings(args, args.nats_url)
    if args.metrics_port is not None:
        # Render time, late frames, time to first frame, free slots of this worker.
        prometheus_client.start_http_server(args.metrics_port, addr=settings.host)

    async def run(stop: asyncio.Event) -> None:
        log_ = await EventLog.connect(settings.nats_url, name="protoface-worker")
        keyring = load_keyring(settings.keys_file, create=False)
        try:
            await Worker(log_, keyring, _worker_settings(settings, args.capacity)).run(stop)
        finally:
            await log_.close()

    realtime.prepare()
    return run_loop(_until_signal(run))


def _supervisor(args: argparse.Namespace) -> int:
    settings = _settings(args, args.nats_url)

    async def run(stop: asyncio.Event) -> None:
        log_ = await EventLog.connect(settings.nats_url, name="protoface-supervisor")
        store = await SnapshotStore.open(log_)
        model = await snapshots.restore(store, SessionsModel)
        usage = await snapshots.restore(store, UsageModel)  # credits_exhausted decisions
        projector = Projector(log_, [model, usage])
        await projector.start()
        try:
            await Supervisor(
                log_, model, settings.heartbeat_seconds, usage,
                timedelta(seconds=settings.stuck_created_seconds)).run(stop)
        finally:
            await projector.stop()
            await log_.close()

    return run_loop(_until_signal(run))


def _webhooks(args: argparse.Namespace) -> int:
    settings = _settings(args, args.nats_url)

    async def run(stop: asyncio.Event) -> None:
        log_ = await EventLog.connect(settings.nats_url, name="protoface-webhooks")
        keyring = load_keyring(settings.keys_file, create=False)
        try:
            await _dispatch(log_, keyring, settings, stop)
        finally:
            await log_.close()

    return run_loop(_until_signal(run))


async def _dispatch(
    event_log: EventLog, keyring: Keyring, settings: Settings, stop: asyncio.Event,
) -> None:
    """The webhook dispatcher, active while this process holds the dispatcher lease."""
    lease = await webhook_dispatcher_lease(
        event_log, f"{socket.gethostname()}:{os.getpid()}")
    dispatch = _dispatch_settings(settings)
    await dispatch_while_holding(
        lease, lambda: Dispatcher(event_log, keyring, session_view, dispatch,
                                  render_avatar=avatar_view), stop)


def _dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        production=settings.production, allow_private=settings.webhook_allow_private,
        scale=settings.webhook_retry_scale)


def _worker_settings(settings: Settings, pinned: dict[str, int] | None = None) -> WorkerSettings:
    return WorkerSettings(slots=settings.worker_slots, heartbeat_seconds=settings.heartbeat_seconds,
                          pinned=pinned or {})


async def _until_signal(run: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run until SIGINT/SIGTERM; ``run`` gets the event and drains when it is set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(stop)
    return 0


async def _serve(settings: Settings, *, create_keys: bool, everything: bool = False,
                 pinned: dict[str, int] | None = None) -> int:
    keyring = load_keyring(settings.keys_file, create=create_keys)
    services = await Services.start(settings, keyring)
    background: list[asyncio.Task[None]] = []
    stop_workers = asyncio.Event()
    if everything:
        await _ensure_dev_key(services.log, settings.data_dir)
        operator.ensure_key_file(settings.data_dir)
        background.append(asyncio.create_task(
            Worker(services.log, keyring, _worker_settings(settings, pinned)).run(stop_workers)))
        background.append(asyncio.create_task(Supervisor(
            services.log, services.sessions_model, settings.heartbeat_seconds,
            services.usage, timedelta(seconds=settings.stuck_created_seconds),
        ).run(stop_workers)))
        background.append(asyncio.create_task(
            _dispatch(services.log, keyring, settings, stop_workers)))
    server = http_server(create_app(services), settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
    serving_task = asyncio.create_task(server.serve())
    log.info("protoface api listening", extra={"url": f"http://{settings.host}:{settings.port}"})
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({serving_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    # The HTTP server ending by itself (it could not bind, or a protocol it needs is
    # missing) is a failure of the whole command, not a quiet stop.
    failed = not waiter.done()
    if failed:
        log.error("the HTTP server stopped unexpectedly")
    stop_workers.set()  # drain sessions before the API goes away
    await asyncio.gather(*background, return_exceptions=True)
    server.should_exit = True
    with contextlib.suppress(Exception):
        await serving_task
    waiter.cancel()
    await services.stop()
    log.info("protoface stopped")
    return 1 if failed else 0


async def _ensure_dev_key(event_log: EventLog, data_dir: Path) -> None:
    """For ``protoface up``: a key for a local "dev" org, written to a file (never logged)."""
    path = data_dir / "dev-api-key"
    if not path.exists():
        issued = await create_key(event_log, "dev", "launch")
        path.write_text(issued.key + "\n")
        path.chmod(0o600)
    log.info("development API key (org dev, plan launch) is in a file", extra={"path": str(path)})


def _avatar_inspect(args: argparse.Namespace) -> int:
    from protoface.worker.face.analysis.inspect import ACCEPTED, inspect
    from protoface.worker.render.rig import RigError

    image = args.image.read_bytes()
    verdict, overlay = inspect(image)
    args.out.write_bytes(overlay)
    print(f"{args.image}: {verdict}")
    if verdict != ACCEPTED:
        return 1
    try:
        print(_upscale_report(image))
    except RigError as refused:  # the analysis accepts it, the build does not
        print(f"{args.image}: the build refuses it: {refused.reason}")
        return 1
    return 0


def _upscale_report(image: bytes) -> str:
    """How much each tier enlarges the portrait's face, as the build will store it."""
    from protoface.worker.render import framing, rig

    face = rig.load_asset(rig.build_asset(image)).rig.face.h
    least, shares = framing.min_face_heights(), framing.face_shares(face)
    parts = [f"{tier} {factor:.2f}×" + ("" if shares[tier] >= 1 else
                                         f" (face drawn {shares[tier]:.0%} of full size; "
                                         f"a face of {least[tier]} px or more fills it)")
             for tier, factor in framing.upscales(face).items()]
    return f"face box {face} px; upscale per tier: " + ", ".join(parts)


def _portrait_asset(path: Path) -> bytes:
    """A portrait file built as an upload is: the API's image checks, then the build."""
    from protoface.api.avatars.images import check
    from protoface.api.errors import ApiError
    from protoface.worker import offline
    from protoface.worker.render.rig import RigError, build_asset

    try:
        return build_asset(check(path.read_bytes()).data)
    except ApiError as refused:
        raise offline.UnknownAvatar(f"{path}: {refused.message}") from None
    except RigError as refused:
        raise offline.UnknownAvatar(f"{path}: {refused.reason}") from None


def _render(args: argparse.Namespace) -> int:
    # Imported here: PyAV and OpenCV are not for the long-running commands to load.
    from protoface.worker import offline

    def assets(avatar_id: str) -> bytes:
        if args.portrait is not None:
            return _portrait_asset(args.portrait)
        if avatar_id in STOCK_AVATARS:
            return offline.stock_only(avatar_id)
        return run_loop(_custom_asset(args.nats_url, avatar_id))

    name = args.avatar or f"portrait:{args.portrait.name}"
    bar = progress_bar("render", forced=args.progress, unit="frames")
    try:
        result = offline.render_file(name, args.audio, TIERS[args.quality], args.out,
                                     seed=args.seed, strip=args.strip, assets=assets,
                                     progress=bar)
    except (offline.UnknownAvatar, offline.UnreadableAudio) as refused:
        print(f"protoface: {refused}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {args.out}: {result.frames} frames, {result.seconds:.2f} s, "
          f"{result.video_codec} + aac")
    return 0


async def _custom_asset(nats_url: str, avatar_id: str) -> bytes:
    """A ready custom avatar's built asset, as a worker loads it (digest checked)."""
    from protoface.worker import offline
    from protoface.worker.avatars import AvatarNotAvailable, load_asset

    try:
        log_ = await asyncio.wait_for(EventLog.connect(nats_url, name="protoface-render"), 10.0)
    except (LogUnavailable, TimeoutError) as down:
        raise offline.UnknownAvatar(
            f"{avatar_id} is not a stock avatar, and NATS at {nats_url} is unreachable "
            f"to load it ({type(down).__name__})") from None
    try:
        return await load_asset(log_, await AvatarStore.open(log_), avatar_id)
    except AvatarNotAvailable as missing:
        raise offline.UnknownAvatar(str(missing)) from None
    finally:
        await log_.close()


def _keys_create(args: argparse.Namespace) -> int:
    async def run() -> str:
        log_ = await EventLog.connect(args.nats_url, name="protoface-cli")
        try:
            issued = await create_key(log_, args.org, args.plan)
        finally:
            await log_.close()
        return issued.key

    print(run_loop(run()))
    return 0


def _credits_grant(args: argparse.Namespace) -> int:
    async def run() -> int:
        log_ = await EventLog.connect(args.nats_url, name="protoface-cli")
        try:
            granted = await grant_credits(log_, args.org, args.credits)
        except Rejected as refused:
            print(f"protoface: {refused.message}", file=sys.stderr)
            return 1
        finally:
            await log_.close()
        print(f"granted {granted.credits} credits to org {args.org} ({granted.org_id})")
        return 0

    return run_loop(run())


if __name__ == "__main__":
    sys.exit(main())
