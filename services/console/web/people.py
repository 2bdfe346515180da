"""Artisans as staff see them: the list, and one artisan's whole profile across the three services."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError
from services.console.web.formatting import apis, attempt
from services.console.web.security import form_key, requires_role, staff_token

blp = Blueprint("people", __name__, url_prefix="/artisans")

# Onboarding's downgrade reasons (services/onboarding/domain/kyc.py; a test keeps them the same).
DOWNGRADE_REASONS = ("screening_hit", "document_forged", "identity_mismatch", "other")


@blp.get("")
def artisans() -> Any:
    tier = request.args.get("tier", type=int)
    page = attempt(
        lambda: apis().onboarding.get(
            staff_token(), "/v1/artisans", tier=tier, limit=50, starting_after=request.args.get("after")
        )
    )
    return render_template("people/list.html", page=page, tier=tier)


@blp.get("/<id:artisan_id>")
def profile(artisan_id: str) -> Any:
    return _profile_page(artisan_id)


@blp.post("/<id:artisan_id>/downgrade")
@requires_role("compliance")
def downgrade(artisan_id: str) -> Any:
    form = request.form
    try:
        apis().onboarding.post(
            staff_token(),
            f"/v1/artisans/{artisan_id}/kyc/downgrades",
            {
                "tier": form.get("tier", type=int),
                "reason_code": form.get("reason_code", ""),
                "note": form.get("note", "").strip(),
            },
            idempotency_key=form.get("idempotency_key", ""),
        )
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _profile_page(
            artisan_id,
            problem=_("The downgrade was refused: %(detail)s", detail=refused.detail or refused.code),
            status=refused.page_status,
            idempotency_key=form_key(form.get("idempotency_key", ""), refused),
        )
    session["notice"] = "downgraded"
    return redirect(url_for("people.profile", artisan_id=artisan_id))


@blp.post("/<id:artisan_id>/rescreen")
@requires_role("compliance")
def rescreen(artisan_id: str) -> Any:
    """Screen the artisan again against the lists in force: onboarding decides what a match does
    (a case, tier 0) and audits it under the officer's name."""
    form = request.form
    try:
        screening = apis().onboarding.post(
            staff_token(),
            f"/v1/artisans/{artisan_id}/screenings",
            idempotency_key=form.get("rescreen_key", ""),
        )
    except ApiError as refused:
        if refused.status == 401:
            raise
        if refused.code == "screening_list_unavailable":
            problem = _("No sanctions list is loaded yet: nothing to screen against.")
        else:
            problem = _("The rescreening was refused (%(code)s).", code=refused.code)
        return _profile_page(
            artisan_id,
            problem=problem,
            status=refused.page_status,
            rescreen_key=form_key(form.get("rescreen_key", ""), refused),
        )
    session["rescreened"] = {
        "outcome": screening["outcome"],
        "list_version": screening["list_version"],
        "review_id": screening.get("review_id"),
    }
    return redirect(url_for("people.profile", artisan_id=artisan_id))


def _profile_page(
    artisan_id: str,
    *,
    problem: str | None = None,
    status: int = 200,
    idempotency_key: str | None = None,
    rescreen_key: str | None = None,
) -> Any:
    token = staff_token()
    onboarding, accounts = apis().onboarding, apis().accounts
    base = f"/v1/artisans/{artisan_id}"
    artisan = onboarding.get(token, base)
    notice = _("Downgrade recorded.") if session.pop("notice", None) == "downgraded" else None
    return render_template(
        "people/profile.html",
        artisan=artisan,
        kyc=attempt(lambda: onboarding.get(token, f"{base}/kyc")),
        bank_accounts=attempt(lambda: onboarding.get(token, f"{base}/bank-accounts")),
        balance=attempt(lambda: accounts.get(token, f"{base}/balance")),
        statement=attempt(lambda: accounts.get(token, f"{base}/transactions", limit=20)),
        payouts=attempt(lambda: accounts.get(token, "/v1/payouts", artisan_id=artisan_id, limit=20)),
        audit=attempt(lambda: onboarding.get(token, f"{base}/kyc/audit-log", limit=100)),
        devices=attempt(lambda: onboarding.get(token, f"{base}/devices")),
        downgrade_reasons=DOWNGRADE_REASONS,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        rescreen_key=rescreen_key or str(uuid.uuid4()),
        rescreened=session.pop("rescreened", None),
        problem=problem,
        notice=notice,
    ), status
