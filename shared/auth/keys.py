"""Signing keys (Ed25519) for the token issuer, and the JWKS that publishes them.

Keys live as PEM files named ``<kid>.pem`` in one directory shared by every issuer replica (a
mounted secret in production). Kids are time-sortable, so the newest key signs; every key in the
directory stays in the JWKS, which is what makes rotation seamless: add a key, wait for caches to
refresh, and delete the old one once the last token it signed has expired.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.ids import new_ulid

_B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode_canonical(segment: str) -> bytes:
    """The bytes of ``segment`` if it is canonical base64url without padding (RFC 7515 §2), else
    ``ValueError``: no ``=``, no ``+`` or ``/``, no whitespace, and no stray bits in the last
    character, so each value has exactly one spelling."""
    # Length 1 (mod 4) encodes no whole byte; any other length does, and only one way.
    if not _B64URL_SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if _b64url(data) != segment:
        raise ValueError("non-canonical base64url (stray trailing bits)")
    return data


def is_canonical_b64url(segment: object) -> bool:
    if not isinstance(segment, str):
        return False
    try:
        b64url_decode_canonical(segment)
    except ValueError:
        return False
    return True


def public_jwk(kid: str, public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "alg": "EdDSA", "use": "sig"}


class SigningKeyStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._cache_signature: tuple[str, ...] | None = None
        self._keys: dict[str, Ed25519PrivateKey] = {}
        # Derived once per set of key files: the verifier compares keys on every request.
        self._public_keys: dict[str, Ed25519PublicKey] = {}

    def generate(self) -> str:
        """Create a new signing key (it becomes the active one). Returns its kid."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        kid = "k_" + new_ulid().lower()
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / f"{kid}.pem"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(temporary, path)
        return kid

    def ensure_key(self) -> str:
        """The active kid, generating a first key if the store is empty."""
        keys = self._load()
        if keys:
            return max(keys)
        return self.generate()

    def _load(self) -> dict[str, Ed25519PrivateKey]:
        with self._lock:
            files = (
                tuple(sorted(p.name for p in self.directory.glob("k_*.pem")))
                if self.directory.is_dir()
                else ()
            )
            if files != self._cache_signature:
                keys = {}
                for name in files:
                    key = serialization.load_pem_private_key((self.directory / name).read_bytes(), None)
                    if isinstance(key, Ed25519PrivateKey):
                        keys[name.removesuffix(".pem")] = key
                self._keys = keys
                self._public_keys = {kid: key.public_key() for kid, key in keys.items()}
                self._cache_signature = files
            return dict(self._keys)

    def active(self) -> tuple[str, Ed25519PrivateKey]:
        keys = self._load()
        if not keys:
            raise RuntimeError(f"no signing key in {self.directory}; run 'hirfa onboarding keys rotate'")
        kid = max(keys)
        return kid, keys[kid]

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        self._load()
        with self._lock:
            return dict(self._public_keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(kid, key) for kid, key in sorted(self.public_keys().items())]}
