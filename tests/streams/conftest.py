"""Fixtures for the event-log suites: a private nats-server a test may crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.server import EmbeddedNats, free_port


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server of this test's own (file store under ``tmp_path``), always stopped."""
    server = EmbeddedNats(
        port=free_port(), store_dir=tmp_path / "jetstream", log_file=tmp_path / "nats.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
