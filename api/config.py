"""Settings for every process, from command-line flags and ``PROTOFACE_*`` variables."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from protoface.domain.sealing import Keyring
from protoface.streams import subjects

# Set (to 1 or 0), it decides whether webhooks may go to loopback and private addresses,
# for ``protoface up`` too; unset, ``up`` on loopback allows them and ``api`` does not.
WEBHOOK_ALLOW_PRIVATE = "PROTOFACE_WEBHOOK_ALLOW_PRIVATE"


@dataclass(frozen=True)
class Settings:
    nats_url: str = "nats://127.0.0.1:4222"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".protoface")
    # Overrides every plan's create rate limit (None: the plan decides).
    create_rate_per_minute: int | None = None
    # Copies of each stream and bucket (PROTOFACE_REPLICAS, read by streams/).
    replicas: int = field(default_factory=subjects.replicas)
    max_body_bytes: int = 1024 * 1024
    seal_keys_file: Path | None = None
    log_level: str = "INFO"
    # Workers announce themselves (and report usage) this often; liveness is judged by it.
    heartbeat_seconds: float = 5.0
    # A session left in ``created`` (its API died between appends) is failed after this.
    stuck_created_seconds: float = 30.0
    # With no free worker slot: "reject" (503 at_capacity) or "queue" (wait for one).
    when_at_capacity: str = "reject"
    # Base URL clients reach this API at (for relay media URLs); default: the request's.
    public_url: str | None = None
    worker_slots: int = 64  # an upper bound: a worker's capacity by cost decides below it
    # How often read models are snapshotted (a restart then folds only the tail).
    snapshot_seconds: float = 30.0
    # Webhooks: production mode accepts only https endpoint URLs; loopback, private and
    # link-local addresses are refused unless allowed; the retry schedule is scaled.
    production: bool = False
    webhook_allow_private: bool = False
    webhook_retry_scale: float = 1.0
    # The browser playground (/playground): None follows the mode (on in development,
    # off in production); PROTOFACE_PLAYGROUND=1 turns it on in production.
    playground: bool | None = None
    # sha256 (hex) of the operator key that opens /ops (the dashboard's data); else
    # ``<data dir>/operator-key``, which ``protoface up`` writes on first run.
    operator_key_sha256: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        if "PROTOFACE_NATS_URL" in env:
            values["nats_url"] = env["PROTOFACE_NATS_URL"]
        if "PROTOFACE_CREATE_RATE_PER_MINUTE" in env:
            values["create_rate_per_minute"] = int(env["PROTOFACE_CREATE_RATE_PER_MINUTE"])
        if "PROTOFACE_SEAL_KEYS_FILE" in env:
            values["seal_keys_file"] = Path(env["PROTOFACE_SEAL_KEYS_FILE"])
        if "PROTOFACE_LOG_LEVEL" in env:
            values["log_level"] = env["PROTOFACE_LOG_LEVEL"]
        if "PROTOFACE_HEARTBEAT_SECONDS" in env:
            values["heartbeat_seconds"] = float(env["PROTOFACE_HEARTBEAT_SECONDS"])
        if "PROTOFACE_STUCK_CREATED_SECONDS" in env:
            values["stuck_created_seconds"] = float(env["PROTOFACE_STUCK_CREATED_SECONDS"])
        if "PROTOFACE_SNAPSHOT_SECONDS" in env:
            values["snapshot_seconds"] = float(env["PROTOFACE_SNAPSHOT_SECONDS"])
        if "PROTOFACE_WHEN_AT_CAPACITY" in env:
            values["when_at_capacity"] = env["PROTOFACE_WHEN_AT_CAPACITY"]
        if "PROTOFACE_PUBLIC_URL" in env:
            values["public_url"] = env["PROTOFACE_PUBLIC_URL"]
        if "PROTOFACE_PRODUCTION" in env:
            values["production"] = env["PROTOFACE_PRODUCTION"].lower() in ("1", "true", "yes")
        if WEBHOOK_ALLOW_PRIVATE in env:
            values["webhook_allow_private"] = (
                env[WEBHOOK_ALLOW_PRIVATE].lower() in ("1", "true", "yes"))
        if "PROTOFACE_WEBHOOK_RETRY_SCALE" in env:
            values["webhook_retry_scale"] = float(env["PROTOFACE_WEBHOOK_RETRY_SCALE"])
        if "PROTOFACE_PLAYGROUND" in env:
            values["playground"] = env["PROTOFACE_PLAYGROUND"].lower() in ("1", "true", "yes")
        if "PROTOFACE_OPERATOR_KEY_SHA256" in env:
            values["operator_key_sha256"] = env["PROTOFACE_OPERATOR_KEY_SHA256"].strip().lower()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def keys_file(self) -> Path:
        return self.seal_keys_file or self.data_dir / "seal-keys.json"

    @property
    def playground_enabled(self) -> bool:
        return self.playground if self.playground is not None else not self.production


def load_keyring(path: Path, *, create: bool) -> Keyring:
    """The sealing keyring: ``{"primary": id, "keys": {id: base64 32 bytes}}``.

    ``protoface up`` generates one into the data dir on first run. To rotate, add
    a key and make it primary; keep the old ones so old sessions stay readable.
    """
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no sealing keys at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        kid = "k" + secrets.token_hex(4)
        doc = {"primary": kid, "keys": {kid: base64.b64encode(secrets.token_bytes(32)).decode()}}
        path.write_text(json.dumps(doc, indent=2))
        path.chmod(0o600)
    doc = json.loads(path.read_text())
    keys = {kid: base64.b64decode(v) for kid, v in doc["keys"].items()}
    return Keyring(keys, doc["primary"])
