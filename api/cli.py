"""The ``protoface`` command line.

    protoface up [--host 127.0.0.1] [--port 8000] [--nats-port 4222] [--data-dir .protoface]
    protoface api [--nats-url …] [--host …] [--port …] [--data-dir …]
    protoface keys create --org NAME --plan free|starter|launch|scale [--nats-url …]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import uvicorn

from api import logs
from api.app import create_app
from api.config import Settings, load_keyring
from api.orgs import create_key
from api.services import Services
from domain.plans import PLANS
from streams.eventlog import EventLog
from streams.server import EmbeddedNats

log = logging.getLogger("protoface")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure()
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protoface", description="Protoface avatar service")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run everything locally on an embedded NATS")
    _serve_args(up)
    up.add_argument("--nats-port", type=int, default=4222)
    up.add_argument("--nats-url", default=None, help="use this NATS instead of starting one")
    up.set_defaults(run=_up)

    api = commands.add_parser("api", help="run the HTTP API against an existing NATS")
    _serve_args(api)
    api.add_argument("--nats-url", default=DEFAULT_NATS_URL)
    api.set_defaults(run=_api)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(required=True)
    create = keys.add_parser("create", help="create an API key (and the org if new)")
    create.add_argument("--org", required=True)
    create.add_argument("--plan", required=True, choices=sorted(PLANS))
    create.add_argument("--nats-url", default=DEFAULT_NATS_URL)
    create.set_defaults(run=_keys_create)
    return parser


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", type=Path, default=Path(".protoface"))
    parser.add_argument("--create-rate-per-minute", type=int, default=None)


def _settings(args: argparse.Namespace, nats_url: str) -> Settings:
    return Settings.from_env(
        nats_url=nats_url, host=args.host, port=args.port, data_dir=args.data_dir,
        create_rate_per_minute=args.create_rate_per_minute,
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
    try:
        return asyncio.run(_serve(_settings(args, nats_url), create_keys=True))
    finally:
        if nats_server is not None:
            nats_server.stop()
            log.info("embedded nats-server stopped")


def _api(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(_settings(args, args.nats_url), create_keys=False))


async def _serve(settings: Settings, *, create_keys: bool) -> int:
    keyring = load_keyring(settings.keys_file, create=create_keys)
    services = await Services.start(settings, keyring)
    config = uvicorn.Config(
        create_app(services), host=settings.host, port=settings.port, log_config=None,
        access_log=False, lifespan="off", ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    log.info("protoface api listening", extra={"url": f"http://{settings.host}:{settings.port}"})
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    with contextlib.suppress(Exception):
        await serving
    waiter.cancel()
    await services.stop()
    log.info("protoface stopped")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    async def run() -> str:
        log_ = await EventLog.connect(args.nats_url, name="protoface-cli")
        try:
            issued = await create_key(log_, args.org, args.plan)
        finally:
            await log_.close()
        return issued.key

    print(asyncio.run(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
