"""Envelope encryption for documents at rest (KYC scans): AES-256-GCM under per-document data keys.

Every document gets its own random data key; that key is stored next to the ciphertext, wrapped
(AES-256-GCM) by a master key whose id travels with the blob. Rotating the master key therefore
never touches document ciphertext: make a new active master key, then ``rewrap`` each blob, which
re-encrypts only its 32-byte data key. Once no blob names the old key it can be retired.

Two kinds of associated data pin a blob in place:

- the caller's AAD (``b"doc_123|art_456|id_front"``) authenticates the document ciphertext, so a
  ciphertext copied onto another row fails to decrypt;
- the master key id authenticates the wrapped data key, so a wrapped key cannot be relabelled as
  belonging to another master key.

Nothing here logs key material or plaintext; only key ids, which are not secret.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
import os
import re
import secrets
import tempfile
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256, for master keys and data keys alike
NONCE_BYTES = 12  # the GCM standard nonce; random nonces are safe far beyond our volume per key
TAG_BYTES = 16
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

ACTIVE_FILE = "ACTIVE"
_KEY_SUFFIX = ".key"
# Kids made by this module: ``mk_20250101120000_a1b2c3``. The timestamp makes them sort by age.
_GENERATED_KID = re.compile(r"^mk_\d{14}_[0-9a-f]{6}$")
# Kids given through the environment may be named by the operator, but they end up in database rows
# and log lines, so keep them to a safe alphabet (no separators, no path characters).
_ANY_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UnknownKeyError(KeyError):
    """No master key with this id is in the ring."""


class KeyRingError(RuntimeError):
    """The ring cannot do what was asked: it is read-only, the key is active, or a key file is bad."""


class DecryptionError(Exception):
    """A blob did not authenticate: tampered, moved to another document, or its master key is gone."""


def new_kid(now: dt.datetime | None = None) -> str:
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"mk_{moment:%Y%m%d%H%M%S}_{secrets.token_hex(3)}"


def _decode_key(encoded: str, source: str) -> bytes:
    """Base64 text to a 32-byte key. ``source`` names where it came from; the key never appears in errors."""
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"master key {source} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"master key {source} is {len(raw)} bytes, expected {KEY_BYTES}")
    return raw


def _fsync_directory(directory: Path) -> None:
    # Without this a crash can lose a freshly renamed key file even though documents were already
    # committed under it, which would make those documents unreadable forever.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so readers see the old file or the whole new one, never a part.

    The temporary file comes from mkstemp, so it is created with mode 0600 before any byte lands.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


class MasterKeyRing:
    """The master keys that wrap data keys, and which of them wraps new ones.

    Directory form (development, or a volume shared by every replica): one ``<kid>.key`` file per
    key holding base64 of 32 random bytes, plus an ``ACTIVE`` file naming the key that wraps new data
    keys (the newest kid when it is missing). ``ACTIVE`` is re-read on every ``active_kid()`` and
    the directory is re-read whenever an unknown kid is asked for, so a rotation done by another
    process is picked up without a restart.

    Environment form (production): ``MasterKeyRing.from_spec("kid1:base64,kid2:base64")``, the last
    key active. It is read-only; rotating means redeploying with a longer list.
    """

    def __init__(self, directory: str | Path) -> None:
        self._configure(Path(directory), keys={}, fixed_active=None)

    def _configure(self, directory: Path | None, keys: dict[str, bytes], fixed_active: str | None) -> None:
        self.directory: Path | None = directory
        self._lock = threading.Lock()
        self._keys = keys
        # Set only for the environment form, where the order of the list decides.
        self._fixed_active = fixed_active

    @classmethod
    def from_spec(cls, spec: str) -> MasterKeyRing:
        """A read-only ring from ``"kid1:base64key,kid2:base64key"``; the last key is active.

        ``spec`` is the value of the environment variable (read through ``shared.config``, which is
        the only module that touches ``os.environ``).
        """
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(part.strip() for part in spec.split(",")):
            if not entry:
                continue
            kid, separator, encoded = entry.partition(":")
            kid = kid.strip()
            if not separator or not _ANY_KID.match(kid):
                # Show only the position: the entry may hold key material.
                raise KeyRingError(f"master key entry #{position + 1} is not 'kid:base64key'")
            if kid in keys:
                raise KeyRingError(f"master key {kid} is listed twice")
            keys[kid] = _decode_key(encoded, kid)
        if not keys:
            raise KeyRingError("no master key given")
        ring = cls.__new__(cls)
        ring._configure(None, keys=keys, fixed_active=list(keys)[-1])
        return ring

    @property
    def read_only(self) -> bool:
        return self.directory is None

    # -- reading ---------------------------------------------------------------------------------

    def kids(self) -> list[str]:
        """Every master key id in the ring, oldest first (in listed order for the environment form)."""
        if self.read_only:
            return list(self._keys)
        self._reload()
        with self._lock:
            return sorted(self._keys)

    def key(self, kid: str) -> bytes:
        with self._lock:
            found = self._keys.get(kid)
        if found is None and not self.read_only:
            self._reload()
            with self._lock:
                found = self._keys.get(kid)
        if found is None:
            raise UnknownKeyError(kid)
        return found

    def active_kid(self) -> str:
        if self._fixed_active is not None:
            return self._fixed_active
        named = self._read_active_file()
        if named is not None:
            # ACTIVE is only ever written after its key file, so a missing key means someone deleted it
            # by hand; refuse rather than quietly wrap under a different key.
            self.key(named)
            return named
        kids = self.kids()
        if not kids:
            raise KeyRingError(f"no master key in {self.directory}; create one with ensure_key()")
        return kids[-1]

    # -- writing (directory form only) -----------------------------------------------------------

    def ensure_key(self) -> str:
        """The active kid, creating a first key when the ring is empty."""
        if self.read_only or self.kids():
            return self.active_kid()
        return self.generate(activate=True)

    def generate(self, activate: bool = True) -> str:
        """Create a new master key and return its kid; it wraps new data keys when ``activate``."""
        directory = self._writable_directory()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        if not activate and self._read_active_file() is None and self.kids():
            # Without an ACTIVE file the newest kid is active, which the new key is about to become;
            # pin the current one first so "not activated" stays true.
            self._write_active_file(self.active_kid())
        kid = self._next_kid()
        material = base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8))
        _write_atomically(directory / f"{kid}{_KEY_SUFFIX}", material + b"\n")
        if activate:
            self._write_active_file(kid)
        self._reload()
        log.info("master key generated", extra={"kid": kid, "activated": activate})
        return kid

    def retire(self, kid: str) -> None:
        """Delete a master key that no blob uses any more. Blobs still wrapped under it become unreadable."""
        directory = self._writable_directory()
        if kid == self.active_kid():
            raise KeyRingError(f"master key {kid} is active; generate and activate another one first")
        if not _GENERATED_KID.match(kid) or kid not in self.kids():
            raise UnknownKeyError(kid)
        (directory / f"{kid}{_KEY_SUFFIX}").unlink(missing_ok=True)
        _fsync_directory(directory)
        self._reload()
        log.info("master key retired", extra={"kid": kid})

    # -- internals -------------------------------------------------------------------------------

    def _next_kid(self) -> str:
        """A kid that sorts after every existing one, so the newest-kid fallback really is the newest."""
        kid = new_kid()
        existing = self.kids()
        if existing and kid <= existing[-1]:
            # Same second as the newest key (or the clock stepped back): the random suffix would
            # order them by chance, so step one second past the newest instead.
            newest = dt.datetime.strptime(existing[-1][3:17], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
            kid = new_kid(newest + dt.timedelta(seconds=1))
        return kid

    def _writable_directory(self) -> Path:
        if self.directory is None:
            raise KeyRingError("this master key ring comes from the environment and is read-only")
        return self.directory

    def _reload(self) -> None:
        """Replace the cache with what is on disk, so retired keys drop out too."""
        assert self.directory is not None
        keys: dict[str, bytes] = {}
        if self.directory.is_dir():
            for path in self.directory.glob(f"mk_*{_KEY_SUFFIX}"):
                kid = path.name.removesuffix(_KEY_SUFFIX)
                if not _GENERATED_KID.match(kid):
                    continue
                try:
                    encoded = path.read_text(encoding="ascii")
                except FileNotFoundError:
                    continue  # retired by another process between glob and read
                keys[kid] = _decode_key(encoded, kid)
        with self._lock:
            self._keys = keys

    def _read_active_file(self) -> str | None:
        assert self.directory is not None
        try:
            named = (self.directory / ACTIVE_FILE).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return named or None

    def _write_active_file(self, kid: str) -> None:
        assert self.directory is not None
        _write_atomically(self.directory / ACTIVE_FILE, f"{kid}\n".encode("ascii"))


@dataclasses.dataclass(frozen=True)
class SealedBlob:
    """What gets stored for one document. None of it is secret without the master key."""

    key_id: str
    # nonce || AES-GCM(master key, data key, AAD=key_id), tag included.
    wrapped_key: bytes = dataclasses.field(repr=False)
    nonce: bytes = dataclasses.field(repr=False)
    # AES-GCM(data key, plaintext, AAD=caller's document binding), tag included. Kept out of repr so a
    # stray log line does not dump a 5 MB scan.
    ciphertext: bytes = dataclasses.field(repr=False)


class EnvelopeCipher:
    def __init__(self, keyring: MasterKeyRing) -> None:
        self.keyring = keyring

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> SealedBlob:
        _require_binding(associated_data)
        kid = self.keyring.active_kid()
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, associated_data)
        return SealedBlob(
            key_id=kid, wrapped_key=self._wrap(kid, data_key), nonce=nonce, ciphertext=ciphertext
        )

    def decrypt(self, blob: SealedBlob, associated_data: bytes) -> bytes:
        _require_binding(associated_data)
        data_key = self._unwrap(blob)
        if len(blob.nonce) != NONCE_BYTES or len(blob.ciphertext) < TAG_BYTES:
            raise DecryptionError("document ciphertext is malformed")
        try:
            return AESGCM(data_key).decrypt(blob.nonce, blob.ciphertext, associated_data)
        except InvalidTag:
            raise DecryptionError("document ciphertext did not authenticate") from None

    def rewrap(self, blob: SealedBlob) -> SealedBlob:
        """The same blob with its data key wrapped under the active master key.

        Nonce and ciphertext are untouched, so this is cheap and never needs the document's AAD.
        """
        active = self.keyring.active_kid()
        if blob.key_id == active:
            return blob
        data_key = self._unwrap(blob)
        return dataclasses.replace(blob, key_id=active, wrapped_key=self._wrap(active, data_key))

    def _wrap(self, kid: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.keyring.key(kid)).encrypt(nonce, data_key, kid.encode("utf-8"))

    def _unwrap(self, blob: SealedBlob) -> bytes:
        try:
            master_key = self.keyring.key(blob.key_id)
        except UnknownKeyError:
            raise DecryptionError(f"master key {blob.key_id!r} is not in the key ring") from None
        if len(blob.wrapped_key) != WRAPPED_KEY_BYTES:
            raise DecryptionError("wrapped data key is malformed")
        nonce, sealed = blob.wrapped_key[:NONCE_BYTES], blob.wrapped_key[NONCE_BYTES:]
        try:
            return AESGCM(master_key).decrypt(nonce, sealed, blob.key_id.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError("wrapped data key did not authenticate") from None


def _require_binding(associated_data: bytes) -> None:
    # Empty AAD would silently drop the document binding, letting a blob be swapped between rows.
    if not isinstance(associated_data, bytes | bytearray) or not associated_data:
        raise ValueError("associated_data must be non-empty bytes identifying the document")
