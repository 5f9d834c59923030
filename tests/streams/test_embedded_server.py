"""The embedded nats-server used by ``protoface up`` and the tests."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from protoface.streams.server import REPO_CONFIG, EmbeddedNats, binary, free_port


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_binary_is_found() -> None:
    assert Path(binary()).exists()


def test_free_port_is_free() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


async def test_starts_with_the_repo_config_and_accepts_jetstream(tmp_path: Path) -> None:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "store")
    assert server.config == REPO_CONFIG and REPO_CONFIG.exists()
    assert server.url == f"nats://127.0.0.1:{server.port}"
    server.start()
    try:
        assert listening(server.port)
        nc = await nats.connect(server.url, connect_timeout=2)
        try:
            # nats.conf raises max_payload to 8 MB: proof the repo's config is in force.
            assert nc.max_payload == 8 * 1024 * 1024
            js = nc.jetstream(timeout=2)
            info = await js.account_info()
            assert info.limits is not None
            await js.add_stream(name="PROBE", subjects=["probe.>"])
            ack = await js.publish("probe.one", b"x")
            assert ack.seq == 1
        finally:
            await nc.close()
        # JetStream keeps its files under the given store directory.
        assert (tmp_path / "store" / "jetstream").is_dir()
    finally:
        server.stop()


def test_stop_terminates_cleanly_and_is_idempotent(tmp_path: Path) -> None:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "store").start()
    process = server.process
    assert process is not None and process.poll() is None

    server.stop()

    assert process.returncode == 0  # SIGTERM: an orderly shutdown, not a kill
    assert not listening(server.port)
    server.stop()  # already stopped: nothing to do
    server.kill()


def test_kill_then_start_again_on_the_same_port(tmp_path: Path) -> None:
    server = EmbeddedNats(port=free_port(), store_dir=tmp_path / "store").start()
    try:
        server.kill()
        assert server.process is not None and server.process.returncode == -9
        assert not listening(server.port)
        server.start()
        assert listening(server.port)
    finally:
        server.stop()


def test_context_manager_starts_and_stops(tmp_path: Path) -> None:
    with EmbeddedNats(port=free_port(), store_dir=tmp_path / "store") as server:
        assert listening(server.port)
    assert server.process is not None and server.process.returncode == 0
    assert not listening(server.port)


def test_start_fails_when_the_port_is_taken(tmp_path: Path) -> None:
    # Readiness must mean *this* process listens, not "something answers on the port".
    first = EmbeddedNats(port=free_port(), store_dir=tmp_path / "one").start()
    try:
        second = EmbeddedNats(port=first.port, store_dir=tmp_path / "two")
        with pytest.raises(RuntimeError):
            second.start(timeout=5)
        second.stop()
        assert listening(first.port)
    finally:
        first.stop()


def test_log_file_receives_the_server_log(tmp_path: Path) -> None:
    log_file = tmp_path / "nats.log"
    with EmbeddedNats(port=free_port(), store_dir=tmp_path / "store", log_file=log_file):
        pass
    assert "Server is ready" in log_file.read_text()
