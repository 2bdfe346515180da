"""KYC document rules: which kinds an artisan uploads, and what a file must look like to be accepted.

The content type is decided from the file's first bytes only. The filename and the declared
Content-Type are chosen by the uploader, so trusting them would let an HTML page or a script be
stored and later served back to a back-office reviewer as an "image".
"""

from __future__ import annotations

import hashlib

DOCUMENT_KINDS = ("id_front", "id_back", "selfie")
ALLOWED_CONTENT_TYPES = ("image/jpeg", "image/png", "application/pdf")
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024

# Magic numbers, each matched at offset 0. PDF readers tolerate junk before "%PDF-"; we do not, so a
# polyglot (HTML with a PDF header further down) is refused.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


class DocumentRuleError(ValueError):
    """An upload breaks a document rule. ``code`` is the stable API error code, ``param`` the field."""

    def __init__(self, code: str, param: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def detect_content_type(data: bytes) -> str | None:
    """The content type the magic bytes announce, or None when they match no allowed type."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    return None


def check_document(kind: str, data: bytes, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """Validate an upload and return its detected content type; raise DocumentRuleError otherwise."""
    if kind not in DOCUMENT_KINDS:
        raise DocumentRuleError(
            "invalid_document_kind", "kind", f"kind must be one of {', '.join(DOCUMENT_KINDS)}"
        )
    if not data:
        raise DocumentRuleError("empty_document", "file", "the uploaded file is empty")
    # Size before sniffing: no point looking inside a file we refuse anyway.
    if len(data) > max_bytes:
        raise DocumentRuleError(
            "document_too_large", "file", f"the uploaded file is larger than {max_bytes} bytes"
        )
    content_type = detect_content_type(data)
    if content_type is None:
        raise DocumentRuleError(
            "unsupported_document_type",
            "file",
            f"the file must be one of {', '.join(ALLOWED_CONTENT_TYPES)}",
        )
    return content_type


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
