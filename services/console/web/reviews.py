"""The KYC review queue and a case page, for compliance officers.

Every decision is onboarding's: the console shows the case, streams the documents through the
audited download endpoint, and forwards the officer's decision with the officer's own token.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError
from services.console.web.formatting import apis, attempt, context
from services.console.web.security import DOCUMENT_SECURITY_POLICY, form_key, requires_role, staff_token
from shared.regions import REGIONS

blp = Blueprint("reviews", __name__, url_prefix="/reviews")

# Onboarding's reason codes (services/onboarding/domain/kyc.py; a test keeps them the same).
APPROVE_REASONS = ("documents_verified", "identity_confirmed", "false_positive")
REJECT_REASONS = (
    "sanctions_match",
    "document_forged",
    "identity_fraud",
    "document_unreadable",
    "document_expired",
    "identity_mismatch",
    "other",
)
REVIEW_KINDS = ("screening_hit", "tier_upgrade", "bank_account_claim")
AGE_FILTERS = (1, 3, 7, 30)

# What a browser may be shown inline; anything else onboarding would never have accepted.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "application/pdf"})


@blp.get("")
@requires_role("compliance")
def queue() -> Any:
    """Open cases, oldest first, filtered by onboarding (kind, region, age) before the page is cut:
    a match is never left on a later page."""
    kind = request.args.get("kind") if request.args.get("kind") in REVIEW_KINDS else None
    region = request.args.get("region") if request.args.get("region") in REGIONS else None
    min_age = request.args.get("min_age", type=int)
    min_age = min_age if min_age in AGE_FILTERS else None
    page = apis().onboarding.get(
        staff_token(),
        "/v1/kyc-reviews",
        status="open",
        kind=kind,
        region=region,
        min_age_days=min_age,
        limit=context().config.review_page_size,
        starting_after=request.args.get("after"),
    )
    artisans: dict[str, Any] = {}
    rows = []
    for review in page["data"]:
        artisan_id = review["artisan_id"]
        if artisan_id not in artisans:
            # The queue carries no name: each case's artisan tells it.
            artisans[artisan_id] = (
                attempt(
                    lambda artisan_id=artisan_id: apis().onboarding.get(
                        staff_token(), f"/v1/artisans/{artisan_id}"
                    )
                ).data
                or {}
            )
        rows.append({"review": review, "artisan": artisans[artisan_id]})
    return render_template(
        "reviews/queue.html",
        rows=rows,
        kinds=REVIEW_KINDS,
        ages=AGE_FILTERS,
        regions=REGIONS,
        chosen={"kind": kind, "region": region, "min_age": min_age},
        next_url=url_for("reviews.queue", **{**request.args.to_dict(), "after": page["next_cursor"]})
        if page.get("has_more")
        else None,
    )


@blp.get("/<id:review_id>")
@requires_role("compliance")
def case(review_id: str) -> Any:
    return _case_page(review_id)


@blp.post("/<id:review_id>/decision")
@requires_role("compliance")
def decide(review_id: str) -> Any:
    form = request.form
    decision = form.get("decision", "")
    reason = form.get("reason_code", "")
    if decision not in ("approve", "reject") or reason not in APPROVE_REASONS + REJECT_REASONS:
        return _case_page(review_id, problem=_("Choose a decision and a reason."), status=422)
    try:
        apis().onboarding.post(
            staff_token(),
            f"/v1/kyc-reviews/{review_id}/decision",
            {"decision": decision, "reason_code": reason, "note": form.get("note", "").strip()},
            # One key per rendered form: a double submit replays the first answer.
            idempotency_key=form.get("idempotency_key", ""),
        )
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _case_page(
            review_id,
            problem=_refusal_message(refused),
            status=refused.page_status,
            idempotency_key=form_key(form.get("idempotency_key", ""), refused),
        )
    session["notice"] = "decided"
    return redirect(url_for("reviews.case", review_id=review_id))


def _refusal_message(refused: ApiError) -> str:
    if refused.code == "four_eyes_violation":
        return _(
            "You cannot decide this case: you submitted it. Another compliance officer must decide it "
            "(four-eyes rule)."
        )
    if refused.code == "review_already_decided":
        return _("This case was already decided.")
    if refused.code == "validation_error":
        return _("The decision was refused: %(detail)s", detail=refused.detail or refused.code)
    return _("The decision was refused (%(code)s).", code=refused.code)


def _case_page(
    review_id: str, *, problem: str | None = None, status: int = 200, idempotency_key: str | None = None
) -> Any:
    token = staff_token()
    onboarding = apis().onboarding
    review = onboarding.get(token, f"/v1/kyc-reviews/{review_id}")
    artisan_path = f"/v1/artisans/{review['artisan_id']}"
    notice = _("Decision recorded.") if session.pop("notice", None) == "decided" else None
    return render_template(
        "reviews/case.html",
        review=review,
        artisan=attempt(lambda: onboarding.get(token, artisan_path)),
        kyc=attempt(lambda: onboarding.get(token, f"{artisan_path}/kyc")),
        documents=attempt(lambda: onboarding.get(token, f"{artisan_path}/documents")),
        audit=attempt(lambda: onboarding.get(token, f"{artisan_path}/kyc/audit-log", limit=100)),
        approve_reasons=APPROVE_REASONS,
        reject_reasons=REJECT_REASONS,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        problem=problem,
        notice=notice,
    ), status


@blp.get("/documents/<id:artisan_id>/<id:document_id>")
@requires_role("compliance")
def document(artisan_id: str, document_id: str) -> Response:
    """The document, streamed from onboarding's audited download to the browser: the console never
    holds it whole and never writes it anywhere; the browser is told not to keep it either."""
    document = apis().onboarding.stream(
        staff_token(), f"/v1/artisans/{artisan_id}/documents/{document_id}/content"
    )
    if document.content_type not in INLINE_TYPES:
        document.close()
        abort(415)

    def body() -> Any:
        try:
            yield from document.chunks
        finally:
            document.close()

    return Response(
        stream_with_context(body()),
        mimetype=document.content_type,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": "inline",
            "Content-Security-Policy": DOCUMENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )
