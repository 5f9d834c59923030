"""The operator key: it opens the read-only operator endpoints (``/ops/…``) that the
dashboard polls. Only its sha256 is configured or compared (in constant time); the
key itself is never logged. ``protoface up`` writes one to ``<data dir>/operator-key``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path

from litestar.connection import ASGIConnection

from protoface.api.config import Settings
from protoface.api.errors import ApiError

log = logging.getLogger("protoface.operator")

KEY_PREFIX = "op_"
FILE_NAME = "operator-key"


def ensure_key_file(data_dir: Path) -> Path:
    """For ``protoface up``: an operator key in a file (0600) beside the dev API key."""
    path = data_dir / FILE_NAME
    if not path.exists():
        path.write_text(KEY_PREFIX + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    log.info("operator key (for /dashboard) is in a file", extra={"path": str(path)})
    return path


def configured_digest(settings: Settings) -> str | None:
    """The configured key's sha256: the setting, else the key file's, else none (closed)."""
    if settings.operator_key_sha256:
        return settings.operator_key_sha256
    path = settings.data_dir / FILE_NAME
    try:
        key = path.read_text().strip()
    except OSError:
        return None
    return _digest(key) if key else None


def check(connection: ASGIConnection, settings: Settings) -> None:  # type: ignore[type-arg]
    """Raise 401 unless the request carries the operator key as a bearer token."""
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError("authentication", "missing_operator_key",
                       "Send the operator key as `Authorization: Bearer op_…`.")
    expected = configured_digest(settings)
    if expected is None or not hmac.compare_digest(_digest(key.strip()), expected):
        raise ApiError("authentication", "invalid_operator_key", "The operator key is not valid.")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
