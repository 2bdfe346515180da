"""The file store on a local directory: each file under ``<dir>/<sha[:2]>/<sha256>``, read-only.

Content-addressed, so a file is kept once however often it is received, and its name proves its
content. Written to a temporary file in the same directory while it is hashed (64 KiB at a time),
then renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from services.accounts.domain.ports import StoredFile

CHUNK_BYTES = 64 * 1024


class LocalFileStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.directory / sha256[:2] / sha256

    def put(self, stream: BinaryIO) -> StoredFile:
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            sha256 = digest.hexdigest()
            path = self._path(sha256)
            if path.exists():
                os.unlink(temporary)  # kept already: the same bytes, by construction
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(temporary, 0o444)
                os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return StoredFile(sha256=sha256, size=size)

    def open(self, sha256: str) -> BinaryIO:
        return self._path(sha256).open("rb")
