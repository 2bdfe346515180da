"""KYC document rules: the type comes from the magic bytes, never from the name or declared type."""

from __future__ import annotations

import hashlib

import pytest

from services.onboarding.domain.documents import (
    ALLOWED_CONTENT_TYPES,
    DOCUMENT_KINDS,
    MAX_DOCUMENT_BYTES,
    DocumentRuleError,
    check_document,
    detect_content_type,
    sha256_hex,
)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04"
HTML = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")],
)
def test_detects_allowed_types(data, expected):
    assert detect_content_type(data) == expected
    assert expected in ALLOWED_CONTENT_TYPES


@pytest.mark.parametrize(
    "data",
    [
        GIF,
        HTML,
        ZIP,
        b"",
        b"just some text",
        b"\xff\xd8",  # a JPEG signature cut short
        b"\x89PNG\r\n",  # a PNG signature cut short
        b"%PDF",  # no dash
        b"  %PDF-1.7",  # the signature must be at offset 0
        b"<html>%PDF-1.7",  # polyglot: a PDF header behind HTML
    ],
)
def test_refuses_everything_else(data):
    assert detect_content_type(data) is None


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
@pytest.mark.parametrize(
    ("data", "expected"), [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")]
)
def test_check_document_returns_the_detected_type(kind, data, expected):
    assert check_document(kind, data) == expected


@pytest.mark.parametrize(
    ("kind", "data", "code", "param"),
    [
        ("id_front", GIF, "unsupported_document_type", "file"),
        ("id_front", HTML, "unsupported_document_type", "file"),
        ("id_back", ZIP, "unsupported_document_type", "file"),
        ("selfie", b"", "empty_document", "file"),
        ("id_front", JPEG + b"\x00" * MAX_DOCUMENT_BYTES, "document_too_large", "file"),
        ("passport", JPEG, "invalid_document_kind", "kind"),
        ("", JPEG, "invalid_document_kind", "kind"),
        ("ID_FRONT", JPEG, "invalid_document_kind", "kind"),
    ],
)
def test_check_document_refusals(kind, data, code, param):
    with pytest.raises(DocumentRuleError) as caught:
        check_document(kind, data)
    assert (caught.value.code, caught.value.param) == (code, param)
    assert isinstance(caught.value, ValueError)


def test_size_limit_is_inclusive_and_configurable():
    exactly_at_limit = JPEG + b"\x00" * (100 - len(JPEG))
    assert check_document("id_front", exactly_at_limit, max_bytes=100) == "image/jpeg"
    with pytest.raises(DocumentRuleError) as caught:
        check_document("id_front", exactly_at_limit + b"\x00", max_bytes=100)
    assert caught.value.code == "document_too_large"


def test_default_limit_is_five_mebibytes():
    assert MAX_DOCUMENT_BYTES == 5 * 1024 * 1024
    assert check_document("id_front", JPEG + b"\x00" * (MAX_DOCUMENT_BYTES - len(JPEG))) == "image/jpeg"


def test_sha256_hex():
    assert sha256_hex(PDF) == hashlib.sha256(PDF).hexdigest()
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
