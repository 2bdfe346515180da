"""Identity documents: upload (sniffed, hashed, encrypted), listing, audited download, and the
master-key rotation that re-wraps data keys without touching any document's ciphertext.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session, undefer

from services.onboarding.adapters.orm import KycDocument
from services.onboarding.domain.documents import DocumentRuleError, check_document, sha256_hex
from services.onboarding.service_layer.artisans import TierPolicy, find_visible_artisan
from services.onboarding.service_layer.kyc import audit, ensure_active, promote_if_earned
from shared.auth import Principal
from shared.crypto import DecryptionError, EnvelopeCipher, SealedBlob
from shared.db import UnitOfWork, utcnow
from shared.errors import HirfaError, NotFound, ValidationFailed
from shared.ids import new_id

log = logging.getLogger(__name__)


def associated_data(document_id: str, artisan_id: str, kind: str) -> bytes:
    """Binds a ciphertext to its row: moved to another document or artisan, it will not decrypt."""
    return f"{document_id}|{artisan_id}|{kind}".encode()


@dataclasses.dataclass(frozen=True)
class UploadedDocument:
    kind: str
    data: bytes


def upload_document(
    uow: UnitOfWork,
    artisan_id: str,
    upload: UploadedDocument,
    principal: Principal,
    *,
    cipher: EnvelopeCipher,
    tiers: TierPolicy,
    max_bytes: int,
) -> KycDocument:
    try:
        content_type = check_document(upload.kind, upload.data, max_bytes)
    except DocumentRuleError as exc:
        raise ValidationFailed(str(exc), code=exc.code, param=exc.param) from None
    with uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal, lock=True)
        ensure_active(artisan)
        document_id = new_id("doc")
        sealed = cipher.encrypt(upload.data, associated_data(document_id, artisan.id, upload.kind))
        # The newest upload of a kind is the one that counts; older ones stay for the audit trail.
        session.execute(
            sa.update(KycDocument)
            .where(
                KycDocument.artisan_id == artisan.id,
                KycDocument.kind == upload.kind,
                KycDocument.status == "active",
            )
            .values(status="superseded")
        )
        document = KycDocument(
            id=document_id,
            artisan_id=artisan.id,
            kind=upload.kind,
            content_type=content_type,
            size_bytes=len(upload.data),
            sha256=sha256_hex(upload.data),
            status="active",
            submitted_by=principal.client_id,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
            created_at=utcnow(),
        )
        session.add(document)
        audit(session, artisan.id, "document.uploaded", principal.client_id, subject_id=document.id)
        # New documents at tier 2 ask for (another) tier-3 review, e.g. after a rejection for an
        # unreadable scan.
        promote_if_earned(uow, artisan, actor=principal.client_id, tiers=tiers, request_review=True)
        uow.commit()
        return document


def list_documents(uow: UnitOfWork, artisan_id: str, principal: Principal) -> list[KycDocument]:
    with uow:
        artisan = find_visible_artisan(uow.session, artisan_id, principal)
        return list(
            uow.session.scalars(
                sa.select(KycDocument).where(KycDocument.artisan_id == artisan.id).order_by(KycDocument.id)
            )
        )


class DocumentUnreadable(HirfaError):
    code = "document_unreadable"
    status = 500
    title = "The document could not be decrypted"


class DocumentShredded(HirfaError):
    code = "document_shredded"
    status = 410
    title = "The document was erased"


def download_document(
    uow: UnitOfWork, artisan_id: str, document_id: str, principal: Principal, *, cipher: EnvelopeCipher
) -> tuple[KycDocument, bytes]:
    """Compliance only (enforced by the view's scope). Every download is audited first: if the
    audit row cannot be written, nothing is returned."""
    with uow:
        session = uow.session
        document = session.scalar(
            sa.select(KycDocument)
            .options(undefer(KycDocument.ciphertext))
            .where(KycDocument.id == document_id, KycDocument.artisan_id == artisan_id)
        )
        if document is None:
            raise NotFound(f"No document {document_id!r} for artisan {artisan_id!r}.", param="document_id")
        if document.shredded_at is not None:
            raise DocumentShredded(
                "This document was crypto-shredded when the artisan's data was erased.", param="document_id"
            )
        plaintext = open_audited(session, document, principal.client_id, cipher=cipher)
        uow.commit()
        return document, plaintext


def open_audited(session: Session, document: KycDocument, actor: str, *, cipher: EnvelopeCipher) -> bytes:
    """The document's content (its ciphertext loaded), the download audited in the caller's
    transaction: nothing is handed out by a transaction that does not commit its audit row."""
    try:
        plaintext = cipher.decrypt(
            SealedBlob(document.key_id, document.wrapped_key, document.nonce, document.ciphertext),
            associated_data(document.id, document.artisan_id, document.kind),
        )
    except DecryptionError:
        log.error("document failed to decrypt", extra={"document_id": document.id, "key_id": document.key_id})
        raise DocumentUnreadable() from None
    audit(session, document.artisan_id, "document.downloaded", actor, subject_id=document.id)
    return plaintext


def rewrap_all_documents(uow_factory, cipher: EnvelopeCipher, batch_size: int = 200) -> int:
    """Re-wrap every document's data key under the active master key; returns how many changed.

    Only the 60-byte wrapped key changes per row: documents are never re-encrypted. Safe to run
    while the service serves traffic, and to re-run after an interruption.
    """
    active = cipher.keyring.active_kid()
    changed = 0
    while True:
        with uow_factory() as uow:
            rows = uow.session.scalars(
                sa.select(KycDocument)
                # A shredded document has no data key left to re-wrap.
                .where(KycDocument.key_id != active, KycDocument.shredded_at.is_(None))
                .order_by(KycDocument.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return changed
            for document in rows:
                rewrapped = cipher.rewrap(
                    SealedBlob(document.key_id, document.wrapped_key, document.nonce, b"")
                )
                document.key_id = rewrapped.key_id
                document.wrapped_key = rewrapped.wrapped_key
            uow.commit()
            changed += len(rows)
