"""Sealing secrets at rest: AES-GCM under a keyring that survives rotation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoface.domain.sealing import Keyring, SealError
from tests.domain.support import PROPERTY

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
OTHER_KEY = b"\x07" * 32
SESSION = "sess_01JN0000000000000000000001"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.worker-token.signature"

# Anything that can be a Python str read from JSON (no lone surrogates).
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


def ring(primary: str = "k1", **keys: bytes) -> Keyring:
    return Keyring(keys or {"k1": OLD_KEY}, primary)


def blob_bytes(sealed: str) -> bytes:
    blob = sealed.split(".", 2)[2]
    return base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))


def with_blob(sealed: str, raw: bytes) -> str:
    version, kid, _ = sealed.split(".", 2)
    return f"{version}.{kid}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


# ── Round trip ──────────────────────────────────────────────────────────────────


def test_a_sealed_value_opens_to_the_plaintext_in_its_context() -> None:
    keyring = ring()
    sealed = keyring.seal(TOKEN, SESSION)
    assert keyring.open(sealed, SESSION) == TOKEN


def test_a_sealed_value_names_the_format_version_and_key_and_hides_the_plaintext() -> None:
    sealed = ring().seal(TOKEN, SESSION)
    version, kid, blob = sealed.split(".", 2)
    assert (version, kid) == ("v1", "k1")
    assert TOKEN not in sealed
    assert "=" not in blob
    # 12-byte nonce, the ciphertext, and a 16-byte tag.
    assert len(blob_bytes(sealed)) == 12 + len(TOKEN.encode()) + 16


def test_sealing_the_same_value_twice_gives_different_ciphertexts() -> None:
    keyring = ring()
    first, second = keyring.seal(TOKEN, SESSION), keyring.seal(TOKEN, SESSION)
    assert first != second
    assert keyring.open(first, SESSION) == keyring.open(second, SESSION) == TOKEN


@PROPERTY
@given(plaintext=texts, context=texts)
def test_any_text_round_trips_in_any_context(plaintext: str, context: str) -> None:
    keyring = ring()
    assert keyring.open(keyring.seal(plaintext, context), context) == plaintext


# ── What must not open ──────────────────────────────────────────────────────────


def test_a_value_opened_in_the_wrong_context_fails() -> None:
    keyring = ring()
    sealed = keyring.seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        keyring.open(sealed, "sess_01JN0000000000000000000002")


@PROPERTY
@given(plaintext=texts, context=texts, other=texts)
def test_a_value_opens_only_in_its_own_context(plaintext: str, context: str, other: str) -> None:
    keyring = ring()
    sealed = keyring.seal(plaintext, context)
    if other == context:
        assert keyring.open(sealed, other) == plaintext
    else:
        with pytest.raises(SealError):
            keyring.open(sealed, other)


@PROPERTY
@given(plaintext=texts, data=st.data())
def test_flipping_any_bit_of_nonce_ciphertext_or_tag_fails(
    plaintext: str, data: st.DataObject,
) -> None:
    keyring = ring()
    sealed = keyring.seal(plaintext, SESSION)
    raw = bytearray(blob_bytes(sealed))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="byte")
    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    raw[index] ^= 1 << bit
    with pytest.raises(SealError):
        keyring.open(with_blob(sealed, bytes(raw)), SESSION)


@pytest.mark.parametrize("cut", [1, 16, 29])
def test_a_truncated_value_fails(cut: int) -> None:
    keyring = ring()
    sealed = keyring.seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        keyring.open(with_blob(sealed, blob_bytes(sealed)[:-cut]), SESSION)


def test_a_value_relabelled_with_another_key_id_of_the_ring_fails() -> None:
    keyring = ring("k1", k1=OLD_KEY, k2=NEW_KEY)
    sealed = keyring.seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        keyring.open(sealed.replace("v1.k1.", "v1.k2.", 1), SESSION)


def test_a_value_sealed_under_an_unknown_key_id_fails() -> None:
    sealed = ring("k9", k9=OTHER_KEY).seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        ring().open(sealed, SESSION)


def test_a_value_with_an_unknown_format_version_fails() -> None:
    keyring = ring()
    sealed = keyring.seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        keyring.open("v2" + sealed[2:], SESSION)


@pytest.mark.parametrize("garbage", ["", "v1", "v1.k1", "not sealed at all", "v1.k1.!!!!"])
def test_malformed_values_fail_with_seal_error(garbage: str) -> None:
    with pytest.raises(SealError):
        ring().open(garbage, SESSION)


def test_seal_error_is_a_value_error() -> None:
    assert issubclass(SealError, ValueError)


# ── Rotation ────────────────────────────────────────────────────────────────────


def test_a_value_sealed_under_the_old_primary_still_opens_after_rotation() -> None:
    before = ring("k1", k1=OLD_KEY)
    sealed = before.seal(TOKEN, SESSION)

    after = ring("k2", k1=OLD_KEY, k2=NEW_KEY)
    assert after.open(sealed, SESSION) == TOKEN


def test_after_rotation_new_values_are_sealed_under_the_new_primary() -> None:
    after = ring("k2", k1=OLD_KEY, k2=NEW_KEY)
    sealed = after.seal(TOKEN, SESSION)
    assert sealed.startswith("v1.k2.")
    with pytest.raises(SealError):
        ring("k1", k1=OLD_KEY).open(sealed, SESSION)
    assert ring("k2", k2=NEW_KEY).open(sealed, SESSION) == TOKEN


def test_dropping_the_old_key_makes_its_values_unreadable() -> None:
    sealed = ring("k1", k1=OLD_KEY).seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        ring("k2", k2=NEW_KEY).open(sealed, SESSION)


def test_the_same_key_id_with_different_key_material_does_not_open() -> None:
    sealed = ring("k1", k1=OLD_KEY).seal(TOKEN, SESSION)
    with pytest.raises(SealError):
        ring("k1", k1=OTHER_KEY).open(sealed, SESSION)


# ── Building a keyring ──────────────────────────────────────────────────────────


def test_the_primary_key_must_be_in_the_ring() -> None:
    with pytest.raises(ValueError, match="primary"):
        Keyring({"k1": OLD_KEY}, "k2")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_keys_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring({"k1": b"\x01" * size}, "k1")


def test_key_ids_cannot_contain_dots() -> None:
    with pytest.raises(ValueError, match="without dots"):
        Keyring({"k.1": OLD_KEY}, "k.1")
