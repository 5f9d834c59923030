"""Sealing secrets at rest (``worker_token``, webhook secrets) with AES-GCM.

A sealed value is ``v1.<key id>.<base64url(nonce ‖ ciphertext)>``. The keyring
keeps every old key so rotation never makes an old session unreadable: new
values are sealed with the primary key, any listed key opens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class SealError(ValueError):
    """A sealed value that no key in the ring opens (tampered, or an unknown key)."""


class Keyring:
    def __init__(self, keys: dict[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise ValueError("the primary key must be in the ring")
        for kid, key in keys.items():
            if len(key) != 32 or "." in kid:
                raise ValueError(f"key {kid!r}: need 32 bytes and an id without dots")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._raw = dict(keys)
        self.primary = primary

    def derive(self, purpose: str) -> dict[str, bytes]:
        """A separate key per ring key for ``purpose`` (e.g. signing media tokens)."""
        return {
            kid: hmac.new(key, purpose.encode(), hashlib.sha256).digest()
            for kid, key in self._raw.items()
        }

    def seal(self, plaintext: str, context: str) -> str:
        """Seal ``plaintext``; ``context`` (e.g. the session id) binds it to one owner."""
        nonce = os.urandom(12)
        sealed = self._keys[self.primary].encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self.primary}.{blob}"

    def open(self, sealed: str, context: str) -> str:
        try:
            version, kid, blob = sealed.split(".", 2)
            aead = self._keys[kid]
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            if version != _VERSION:
                raise SealError(f"unknown seal version {version!r}")
            return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except SealError:
            raise
        except Exception as exc:  # wrong key, tampered bytes, malformed value
            raise SealError("sealed value cannot be opened") from exc
