"""Envelope encryption: round trips, the tampering it must catch, master key rotation, the key ring."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import stat

import pytest

from shared.crypto import (
    ACTIVE_FILE,
    DecryptionError,
    EnvelopeCipher,
    KeyRingError,
    MasterKeyRing,
    SealedBlob,
    UnknownKeyError,
)

AAD = b"doc_123|art_456|id_front"
SCAN = b"\xff\xd8\xff\xe0" + os.urandom(2048)


@pytest.fixture
def ring(tmp_path) -> MasterKeyRing:
    keys = MasterKeyRing(tmp_path / "master-keys")
    keys.ensure_key()
    return keys


@pytest.fixture
def cipher(ring) -> EnvelopeCipher:
    return EnvelopeCipher(ring)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def spec_entry(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


class TestEnvelopeCipher:
    def test_round_trip(self, cipher, ring):
        blob = cipher.encrypt(SCAN, AAD)
        assert blob.key_id == ring.active_kid()
        assert len(blob.nonce) == 12
        assert SCAN not in blob.ciphertext
        assert cipher.decrypt(blob, AAD) == SCAN

    def test_empty_plaintext_round_trips(self, cipher):
        assert cipher.decrypt(cipher.encrypt(b"", AAD), AAD) == b""

    def test_every_encryption_uses_a_fresh_data_key_and_nonce(self, cipher):
        first, second = cipher.encrypt(SCAN, AAD), cipher.encrypt(SCAN, AAD)
        assert first.nonce != second.nonce
        assert first.wrapped_key != second.wrapped_key
        assert first.ciphertext != second.ciphertext
        # Different data keys: each blob's data key cannot open the other's ciphertext.
        swapped = dataclasses.replace(first, wrapped_key=second.wrapped_key)
        with pytest.raises(DecryptionError):
            cipher.decrypt(swapped, AAD)

    def test_ciphertext_moved_to_another_document_is_refused(self, cipher):
        blob = cipher.encrypt(SCAN, AAD)
        with pytest.raises(DecryptionError):
            cipher.decrypt(blob, b"doc_999|art_456|id_front")

    @pytest.mark.parametrize("field", ["ciphertext", "wrapped_key", "nonce"])
    def test_tampering_is_refused(self, cipher, field):
        blob = cipher.encrypt(SCAN, AAD)
        tampered = dataclasses.replace(blob, **{field: flip_last_byte(getattr(blob, field))})
        with pytest.raises(DecryptionError):
            cipher.decrypt(tampered, AAD)

    def test_truncated_parts_are_refused(self, cipher):
        blob = cipher.encrypt(SCAN, AAD)
        for broken in (
            dataclasses.replace(blob, ciphertext=blob.ciphertext[:-16]),
            dataclasses.replace(blob, ciphertext=b""),
            dataclasses.replace(blob, wrapped_key=blob.wrapped_key[:-1]),
            dataclasses.replace(blob, nonce=blob.nonce[:8]),
        ):
            with pytest.raises(DecryptionError):
                cipher.decrypt(broken, AAD)

    def test_wrapped_key_relabelled_to_another_master_key_is_refused(self, cipher, ring):
        blob = cipher.encrypt(SCAN, AAD)
        other = ring.generate(activate=False)
        with pytest.raises(DecryptionError):
            cipher.decrypt(dataclasses.replace(blob, key_id=other), AAD)

    def test_relabelling_fails_even_when_both_labels_hold_the_same_key(self):
        # The wrap is bound to the kid itself, not just to whichever key the kid resolves to.
        material = base64.b64encode(os.urandom(32)).decode()
        cipher = EnvelopeCipher(MasterKeyRing.from_spec(f"mk_a:{material},mk_b:{material}"))
        blob = cipher.encrypt(SCAN, AAD)
        assert blob.key_id == "mk_b"
        with pytest.raises(DecryptionError):
            cipher.decrypt(dataclasses.replace(blob, key_id="mk_a"), AAD)

    def test_unknown_master_key_is_a_decryption_error(self, cipher):
        blob = cipher.encrypt(SCAN, AAD)
        with pytest.raises(DecryptionError):
            cipher.decrypt(dataclasses.replace(blob, key_id="mk_20000101000000_abcdef"), AAD)

    def test_empty_associated_data_is_refused(self, cipher):
        with pytest.raises(ValueError):
            cipher.encrypt(SCAN, b"")

    def test_repr_leaves_out_the_bytes(self, cipher):
        blob = cipher.encrypt(SCAN, AAD)
        assert repr(blob) == f"SealedBlob(key_id={blob.key_id!r})"


class TestRotation:
    def test_rewrap_moves_the_data_key_under_the_new_master_key(self, cipher, ring):
        key_a = ring.active_kid()
        blob = cipher.encrypt(SCAN, AAD)
        key_b = ring.generate()
        assert ring.active_kid() == key_b != key_a

        rewrapped = cipher.rewrap(blob)

        assert rewrapped.key_id == key_b
        assert rewrapped.wrapped_key != blob.wrapped_key
        assert (rewrapped.nonce, rewrapped.ciphertext) == (blob.nonce, blob.ciphertext)
        assert cipher.decrypt(rewrapped, AAD) == SCAN
        assert cipher.decrypt(blob, AAD) == SCAN  # still readable until A is retired

    def test_new_documents_use_the_new_key(self, cipher, ring):
        key_b = ring.generate()
        assert cipher.encrypt(SCAN, AAD).key_id == key_b

    def test_rewrap_under_the_active_key_is_a_no_op(self, cipher):
        blob = cipher.encrypt(SCAN, AAD)
        assert cipher.rewrap(blob) is blob

    def test_after_retiring_the_old_key_only_rewrapped_blobs_decrypt(self, cipher, ring):
        key_a = ring.active_kid()
        rewrapped_later, left_behind = cipher.encrypt(SCAN, AAD), cipher.encrypt(SCAN, AAD)
        ring.generate()
        rewrapped = cipher.rewrap(rewrapped_later)

        ring.retire(key_a)

        assert key_a not in ring.kids()
        assert cipher.decrypt(rewrapped, AAD) == SCAN
        with pytest.raises(DecryptionError):
            cipher.decrypt(left_behind, AAD)
        with pytest.raises(DecryptionError):
            cipher.rewrap(left_behind)

    def test_rewrap_of_a_tampered_wrapped_key_is_refused(self, cipher, ring):
        blob = cipher.encrypt(SCAN, AAD)
        ring.generate()
        with pytest.raises(DecryptionError):
            cipher.rewrap(dataclasses.replace(blob, wrapped_key=flip_last_byte(blob.wrapped_key)))

    def test_rotation_by_another_process_is_picked_up(self, tmp_path):
        directory = tmp_path / "shared-keys"
        web = MasterKeyRing(directory)
        web.ensure_key()
        web_cipher = EnvelopeCipher(web)
        assert web.kids()  # the web process has loaded its cache

        operator = MasterKeyRing(directory)  # e.g. the rotation CLI
        new_kid = operator.generate()
        blob_from_operator = EnvelopeCipher(operator).encrypt(SCAN, AAD)

        assert web.active_kid() == new_kid
        assert web_cipher.encrypt(SCAN, AAD).key_id == new_kid
        assert web_cipher.decrypt(blob_from_operator, AAD) == SCAN


class TestMasterKeyRing:
    def test_files_are_private(self, ring):
        assert stat.S_IMODE(ring.directory.stat().st_mode) == 0o700
        for kid in ring.kids():
            assert stat.S_IMODE((ring.directory / f"{kid}.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((ring.directory / ACTIVE_FILE).stat().st_mode) == 0o600

    def test_key_file_holds_base64_of_32_bytes(self, ring):
        kid = ring.active_kid()
        assert len(base64.b64decode((ring.directory / f"{kid}.key").read_text())) == 32
        assert ring.key(kid) == base64.b64decode((ring.directory / f"{kid}.key").read_text())

    def test_kids_are_well_formed_and_sort_by_creation(self, ring):
        # Several in the same second: each must still sort after the previous one.
        made = [ring.active_kid()] + [ring.generate(activate=False) for _ in range(20)]
        assert all(re.fullmatch(r"mk_\d{14}_[0-9a-f]{6}", kid) for kid in made)
        assert ring.kids() == made == sorted(made)

    def test_ensure_key_is_idempotent(self, ring):
        kid = ring.active_kid()
        assert ring.ensure_key() == kid
        assert ring.kids() == [kid]

    def test_active_file_names_the_active_key(self, ring):
        new = ring.generate()
        assert (ring.directory / ACTIVE_FILE).read_text().strip() == new

    def test_generate_without_activating_keeps_the_current_key_active(self, ring):
        current = ring.active_kid()
        (ring.directory / ACTIVE_FILE).unlink()  # newest-kid fallback must not promote the new key
        standby = ring.generate(activate=False)
        assert standby in ring.kids()
        assert ring.active_kid() == current

    def test_without_active_file_the_newest_key_is_active(self, ring):
        newest = ring.generate()
        (ring.directory / ACTIVE_FILE).unlink()
        assert ring.active_kid() == newest == max(ring.kids())

    def test_unknown_key(self, ring):
        with pytest.raises(UnknownKeyError):
            ring.key("mk_20000101000000_abcdef")
        with pytest.raises(KeyError):  # callers may catch the builtin
            ring.key("../../etc/passwd")

    def test_refuses_to_retire_the_active_key(self, ring):
        active = ring.active_kid()
        with pytest.raises(KeyRingError):
            ring.retire(active)
        assert active in ring.kids()

    def test_retiring_an_unknown_key(self, ring):
        ring.generate()
        with pytest.raises(UnknownKeyError):
            ring.retire("mk_20000101000000_abcdef")

    def test_empty_ring_has_no_active_key(self, tmp_path):
        with pytest.raises(KeyRingError):
            MasterKeyRing(tmp_path / "nothing").active_kid()

    def test_corrupt_key_file_is_refused_without_echoing_it(self, ring):
        (ring.directory / "mk_20000101000000_abcdef.key").write_text("c2hvcnQ=")  # 5 bytes
        with pytest.raises(KeyRingError, match="5 bytes") as caught:
            ring.kids()
        assert "c2hvcnQ" not in str(caught.value)


class TestEnvironmentKeyRing:
    def test_last_key_is_active_and_all_decrypt(self):
        old = MasterKeyRing.from_spec(spec_entry("mk_old"))
        blob = EnvelopeCipher(old).encrypt(SCAN, AAD)
        old_entry = f"mk_old:{base64.b64encode(old.key('mk_old')).decode()}"

        rotated = MasterKeyRing.from_spec(f"{old_entry}, {spec_entry('mk_new')}")
        cipher = EnvelopeCipher(rotated)

        assert rotated.kids() == ["mk_old", "mk_new"]
        assert rotated.active_kid() == rotated.ensure_key() == "mk_new"
        assert cipher.decrypt(blob, AAD) == SCAN
        assert cipher.rewrap(blob).key_id == "mk_new"
        assert cipher.decrypt(cipher.rewrap(blob), AAD) == SCAN

    def test_is_read_only(self):
        ring = MasterKeyRing.from_spec(f"{spec_entry('mk_a')},{spec_entry('mk_b')}")
        assert ring.read_only
        with pytest.raises(KeyRingError):
            ring.generate()
        with pytest.raises(KeyRingError):
            ring.retire("mk_a")
        with pytest.raises(UnknownKeyError):
            ring.key("mk_c")

    @pytest.mark.parametrize(
        "spec",
        [
            "",
            " , ",
            "no-separator",
            "mk_a:not base64!",
            f"mk_a:{base64.b64encode(os.urandom(16)).decode()}",
            f"{spec_entry('mk_a')},{spec_entry('mk_a')}",
            spec_entry("../etc"),
        ],
    )
    def test_malformed_specs_are_refused(self, spec):
        with pytest.raises(KeyRingError) as caught:
            MasterKeyRing.from_spec(spec)
        key_material = spec.partition(":")[2].split(",")[0]
        assert not key_material or key_material not in str(caught.value)


def test_sealed_blob_is_frozen():
    blob = SealedBlob(key_id="mk_a", wrapped_key=b"w", nonce=b"n", ciphertext=b"c")
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.key_id = "mk_b"  # type: ignore[misc]
