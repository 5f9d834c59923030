"""A 3-node nats-server cluster on loopback ports, each node with its own store, made
from the cluster block documented in nats.conf."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from protoface.streams.eventlog import EventLog
from protoface.streams.idempotency import IdempotencyStore
from protoface.streams.server import EmbeddedNats, free_port
from protoface.streams.snapshots import SnapshotStore
from protoface.streams.work import WorkerRegistry

NODE_CONFIG = """
server_name: {name}
listen: 127.0.0.1:{port}
max_payload: 8MB
jetstream {{
  max_memory_store: 64MB
  max_file_store: 1GB
}}
cluster {{
  name: protoface
  listen: 127.0.0.1:{cluster_port}
  routes: [
{routes}
  ]
}}
"""


class Cluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        root.mkdir(parents=True, exist_ok=True)
        routes = "\n".join(f"    nats-route://127.0.0.1:{p}" for p in self.cluster_ports)
        self.nodes: list[EmbeddedNats] = []
        for i, (port, cluster_port) in enumerate(zip(self.ports, self.cluster_ports,
                                                     strict=True)):
            store = root / f"node{i}"
            config = root / f"node{i}.conf"
            config.write_text(NODE_CONFIG.format(name=f"n{i}", port=port,
                                                 cluster_port=cluster_port, routes=routes))
            self.nodes.append(EmbeddedNats(port=port, store_dir=store, config=config,
                                           log_file=root / f"node{i}.log"))

    @property
    def url(self) -> str:
        """Every node, comma-separated (how PROTOFACE_NATS_URL names a cluster)."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


async def wait_for_jetstream(url: str, within: float = 30.0) -> None:
    """Until the nodes have elected a meta leader and the R3 log, buckets and object
    store exist and answer (a process starting before that would time out)."""
    deadline = time.monotonic() + within
    while True:
        try:
            log = await EventLog.connect(url, replicas=3)
            try:
                await IdempotencyStore.open(log.js, 3)
                await WorkerRegistry.open(log, 3)
                await (await SnapshotStore.open(log, 3)).load("probe")
            finally:
                await log.close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
