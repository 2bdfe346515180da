"""An artisan's personal data (law 09-08 on the protection of personal data): the export of
everything Hirfa holds about them, as one archive.

Onboarding holds the identity, the KYC file and the bank accounts; payments and accounts hold the
money. Their parts are asked for first, through their APIs (``PersonalDataSource``): a service that
cannot answer refuses the whole export (503), never a half archive. Then onboarding's own part is
read, the documents (when asked for) decrypted through the audited download path, and the export
itself written to the KYC audit log, in one transaction: nothing is handed out that is not audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, undefer

from services.onboarding.adapters.orm import (
    Artisan,
    ArtisanDevice,
    ArtisanMarketplace,
    BankAccount,
    KycAuditEntry,
    KycDocument,
    KycReview,
    KycTierChange,
    Notification,
    PhoneVerification,
    ScreeningResult,
)
from services.onboarding.domain.ports import PersonalDataSource, PersonalDataUnavailable
from services.onboarding.service_layer.artisans import find_visible_artisan
from services.onboarding.service_layer.documents import open_audited
from services.onboarding.service_layer.kyc import audit
from shared.auth import Principal
from shared.crypto import EnvelopeCipher
from shared.db import UnitOfWork, utcnow
from shared.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# The archive's layout version, in its manifest: a reader can tell what to expect.
ARCHIVE_FORMAT = 1
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


class PersonalDataIncomplete(ServiceUnavailable):
    code = "personal_data_unavailable"
    title = "Part of the personal data cannot be gathered right now"
    retry_after_seconds = 30

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(self.retry_after_seconds)})
        super().__init__(detail, **kwargs)


@dataclasses.dataclass(frozen=True)
class PersonalDataExport:
    artisan_id: str
    filename: str
    archive: bytes  # a zip


def export_personal_data(
    uow_factory: Callable[[], UnitOfWork],
    artisan_id: str,
    principal: Principal,
    *,
    sources: Iterable[PersonalDataSource],
    cipher: EnvelopeCipher,
    include_documents: bool = False,
    now: dt.datetime | None = None,
) -> PersonalDataExport:
    """The archive of everything Hirfa holds about ``artisan_id``, for ``principal`` (the artisan
    themself, or compliance). ``include_documents`` adds the KYC documents themselves, each
    download audited like any other."""
    with uow_factory() as uow:
        # Another artisan's id is "not found" before any service is asked anything.
        find_visible_artisan(uow.session, artisan_id, principal)
    remote = {source.name: _collect(source, artisan_id) for source in sources}
    now = now or utcnow()
    with uow_factory() as uow:
        session = uow.session
        artisan = find_visible_artisan(session, artisan_id, principal)
        files: dict[str, bytes] = {
            f"onboarding/{name}.json": _json(part)
            for name, part in _onboarding_parts(session, artisan).items()
        }
        if include_documents:
            for document in _documents(session, artisan.id, with_content=True):
                content = open_audited(session, document, principal.client_id, cipher=cipher)
                files[f"onboarding/documents/{document.id}.{_EXTENSIONS[document.content_type]}"] = content
        for service, part in remote.items():
            for name, value in part.items():
                if name not in ("object", "service", "artisan_id"):
                    files[f"{service}/{name}.json"] = _json(value)
        audit(
            session,
            artisan.id,
            "personal_data.exported",
            principal.client_id,
            note="with documents" if include_documents else None,
        )
        uow.commit()
    manifest = {
        "object": "personal_data_export",
        "format": ARCHIVE_FORMAT,
        "artisan_id": artisan_id,
        "generated_at": now.isoformat(),
        "requested_by": principal.client_id,
        "services": ["onboarding", *remote],
        "documents_included": include_documents,
        "files": sorted(files),
    }
    return PersonalDataExport(
        artisan_id=artisan_id,
        filename=f"hirfa-personal-data-{artisan_id}-{now:%Y%m%d}.zip",
        archive=_zip({"manifest.json": _json(manifest), **files}, now),
    )


def _collect(source: PersonalDataSource, artisan_id: str) -> Mapping[str, Any]:
    try:
        return source.collect(artisan_id)
    except PersonalDataUnavailable as exc:
        service = exc.service
        log.warning(
            "personal data export refused: a service did not answer",
            extra={"service": service, "reason": str(exc), "artisan_id": artisan_id},
        )
        raise PersonalDataIncomplete(
            f"The {service} service cannot give its part of the data right now; nothing was exported.",
            service=service,
        ) from None


def _onboarding_parts(session: Session, artisan: Artisan) -> dict[str, Any]:
    """Onboarding's part of the archive, one file per name."""
    artisan_id = artisan.id

    def rows(model: Any, *order: Any) -> list[Any]:
        return list(session.scalars(sa.select(model).where(model.artisan_id == artisan_id).order_by(*order)))

    return {
        "profile": {
            "id": artisan.id,
            "full_name": artisan.full_name,
            "cin": artisan.cin,
            "date_of_birth": artisan.date_of_birth,
            "phone": artisan.phone,
            "region": artisan.region,
            "craft": artisan.craft,
            "preferred_language": artisan.preferred_language,
            "artisan_card_number": artisan.artisan_card_number,
            "cooperative_ice": artisan.cooperative_ice,
            "warnings": artisan.warnings,
            "kyc_tier": artisan.kyc_tier,
            "status": artisan.status,
            "phone_verified_at": artisan.phone_verified_at,
            "screening_status": artisan.screening_status,
            "created_at": artisan.created_at,
            "updated_at": artisan.updated_at,
            "marketplaces": [
                {"marketplace_id": link.marketplace_id, "registered_at": link.created_at}
                for link in rows(ArtisanMarketplace, ArtisanMarketplace.created_at)
            ],
        },
        "kyc": {
            "tier_changes": [
                _columns(change, "from_tier", "to_tier", "reason_code", "note", "actor", "created_at")
                for change in rows(KycTierChange, KycTierChange.created_at, KycTierChange.id)
            ],
            "phone_verifications": [
                _columns(check, "id", "phone", "status", "attempts", "created_at", "verified_at")
                for check in rows(PhoneVerification, PhoneVerification.id)
            ],
            "screenings": [
                _columns(result, "id", "list_version", "screened_name", "outcome", "matches", "created_at")
                for result in rows(ScreeningResult, ScreeningResult.id)
            ],
            "reviews": [
                _columns(
                    review,
                    "id",
                    "kind",
                    "requested_tier",
                    "status",
                    "details",
                    "decision",
                    "reason_code",
                    "note",
                    "created_at",
                    "decided_at",
                )
                for review in rows(KycReview, KycReview.id)
            ],
        },
        "documents": [
            _columns(document, "id", "kind", "content_type", "size_bytes", "sha256", "status", "submitted_by")
            | {"created_at": document.created_at, "shredded_at": document.shredded_at}
            for document in _documents(session, artisan_id)
        ],
        "bank_accounts": [
            _columns(
                account,
                "id",
                "mode",
                "status",
                "bank_code",
                "partner_bank",
                "rib",
                "iban",
                "holder_name",
                "holder_verification",
                "is_default",
                "refusal_reason",
                "created_at",
                "updated_at",
            )
            for account in rows(BankAccount, BankAccount.id)
        ],
        "notifications": [
            _columns(
                notification,
                "id",
                "kind",
                "language",
                "text",
                "channel",
                "status",
                "sent_at",
                "delivered_at",
                "read_at",
                "created_at",
            )
            for notification in rows(Notification, Notification.created_at, Notification.id)
        ],
        "devices": [
            _columns(device, "device_id", "first_signed_in_at", "last_signed_in_at", "revoked_at")
            for device in rows(ArtisanDevice, ArtisanDevice.first_signed_in_at)
        ],
        "kyc_audit_log": [
            _columns(entry, "id", "action", "actor", "subject_id", "reason_code", "note", "created_at")
            for entry in rows(KycAuditEntry, KycAuditEntry.id)
        ],
    }


def _documents(session: Session, artisan_id: str, *, with_content: bool = False) -> list[KycDocument]:
    query = sa.select(KycDocument).where(KycDocument.artisan_id == artisan_id).order_by(KycDocument.id)
    if with_content:
        # A shredded document (an erased artisan's) has nothing left to give.
        query = query.where(KycDocument.shredded_at.is_(None)).options(undefer(KycDocument.ciphertext))
    return list(session.scalars(query))


def _columns(row: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _json(value: Any) -> bytes:
    return json.dumps(value, default=_jsonable, ensure_ascii=False, indent=2, sort_keys=True).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _zip(files: Mapping[str, bytes], moment: dt.datetime) -> bytes:
    buffer = io.BytesIO()
    stamp = moment.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            entry = zipfile.ZipInfo(name, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, content)
    return buffer.getvalue()
