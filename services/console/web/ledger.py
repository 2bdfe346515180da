"""The ledger, for operators: cases with their parked events, the integrity check, marketplaces'
reserves below zero, and acting on a case with accounts' adjustments API.

An operator proposes a reversal of a journal entry or a manual adjustment (lines between named
accounts, with a reason). Up to accounts' four-eyes amount it is posted at once; above it, it waits
in ``pending_approval`` for another operator, who approves or rejects it on the adjustments page.
The rule is accounts': the console forwards the person's token and shows the refusal
(403 ``four_eyes_required`` when the proposer approves their own) as a message on the page.

Platform accounts' balances have no API; reserves below zero (``/v1/ledger/reserves``) are the
platform-side balances accounts offers.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError
from services.console.web import entry_forms
from services.console.web.formatting import apis, attempt
from services.console.web.security import form_key, requires_role, staff_token

blp = Blueprint("ledger", __name__, url_prefix="/ledger")

CASE_STATUSES = ("open", "waiting", "resolved")
ADJUSTMENT_KINDS = ("reversal", "manual")


@blp.get("")
@requires_role("operator")
def overview() -> Any:
    status = request.args.get("status") if request.args.get("status") in CASE_STATUSES else "open"
    accounts = apis().accounts
    token = staff_token()
    return render_template(
        "ledger/overview.html",
        status=status,
        statuses=CASE_STATUSES,
        cases=attempt(
            lambda: accounts.get(
                token, "/v1/ledger/cases", status=status, limit=50, starting_after=request.args.get("after")
            )
        ),
        integrity=attempt(lambda: accounts.get(token, "/v1/ledger/integrity")),
        reserves=attempt(lambda: accounts.get(token, "/v1/ledger/reserves", below_zero="true", limit=50)),
    )


# --- adjustments -----------------------------------------------------------------------------------


@blp.get("/adjustments")
@requires_role("operator")
def adjustments() -> Any:
    return _adjustments_page()


@blp.get("/adjustments/new")
@requires_role("operator")
def new_adjustment() -> Any:
    case_id = request.args.get("case_id", "")
    reason = _("Ledger case %(case)s", case=case_id) if case_id else ""
    return _proposal_page(
        form={"kind": "reversal", "reason": reason, "reverses_entry_id": request.args.get("entry_id", "")},
        rows=entry_forms.empty_rows(),
    )


@blp.post("/adjustments")
@requires_role("operator")
def propose() -> Any:
    form = request.form
    rows = entry_forms.rows_of(form)
    kind = form.get("kind", "")
    reason = form.get("reason", "").strip()
    body: dict[str, Any] = {"reason": reason}
    try:
        if kind not in ADJUSTMENT_KINDS or not reason:
            raise entry_forms.FormProblem(_("Choose a reversal or an adjustment, and give a reason."))
        if kind == "reversal":
            entry_id = form.get("reverses_entry_id", "").strip()
            if not entry_id:
                raise entry_forms.FormProblem(_("A reversal needs the journal entry's id."))
            body["reverses_entry_id"] = entry_id
        else:
            body["lines"] = entry_forms.lines_of(rows)
        adjustment = apis().accounts.post(
            staff_token(), "/v1/ledger/adjustments", body, idempotency_key=form.get("idempotency_key", "")
        )
    except entry_forms.FormProblem as problem:
        return _proposal_page(form=form, rows=rows, problem=str(problem), status=422)
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _proposal_page(
            form=form,
            rows=rows,
            problem=refusal_message(refused),
            status=refused.page_status,
            idempotency_key=form_key(form.get("idempotency_key", ""), refused),
        )
    session["notice"] = f"adjustment:{adjustment.get('status', '')}"
    return redirect(url_for("ledger.adjustments"))


@blp.post("/adjustments/<id:adjustment_id>/<any(approve, reject):decision>")
@requires_role("operator")
def decide(adjustment_id: str, decision: str) -> Any:
    note = request.form.get("note", "").strip() or None
    try:
        apis().accounts.post(
            staff_token(), f"/v1/ledger/adjustments/{adjustment_id}/{decision}", {"note": note}
        )
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _adjustments_page(problem=refusal_message(refused), status=refused.page_status)
    session["notice"] = f"adjustment:{'posted' if decision == 'approve' else 'rejected'}"
    return redirect(url_for("ledger.adjustments"))


def refusal_message(refused: ApiError) -> str:
    """Accounts' refusal of an adjustment (or a write-off), in words an operator can act on."""
    if refused.code == "four_eyes_required":
        return _(
            "You cannot approve this adjustment: you proposed it. Another operator must approve it "
            "(four-eyes rule)."
        )
    if refused.code in ("already_reversed", "reversal_pending"):
        return _("This journal entry is already reversed, or a reversal of it waits for approval.")
    if refused.code == "unbalanced_entry":
        return _("The lines do not balance: debits and credits must be equal.")
    if refused.code in ("artisan_balance_negative", "tier_cap_exceeded"):
        return _("The ledger's balance rules refuse it (%(code)s).", code=refused.code)
    if refused.code in ("resource_not_found", "not_found"):
        return _("Not found: check the ids you gave.")
    if refused.code in (
        "validation_error",
        "unknown_account",
        "case_state_conflict",
        "adjustment_not_pending",
    ):
        return _("Refused: %(detail)s", detail=refused.detail or refused.code)
    return _("Refused (%(code)s).", code=refused.code)


def _notice() -> str | None:
    notice = session.pop("notice", None)
    if notice == "adjustment:posted":
        return _("The adjustment is posted.")
    if notice == "adjustment:pending_approval":
        return _("The adjustment waits for another operator's approval (four-eyes rule).")
    if notice == "adjustment:rejected":
        return _("The adjustment is rejected: nothing was posted.")
    return None


def _adjustments_page(*, problem: str | None = None, status: int = 200) -> Any:
    accounts = apis().accounts
    token = staff_token()
    return render_template(
        "ledger/adjustments.html",
        pending=attempt(
            lambda: accounts.get(
                token,
                "/v1/ledger/adjustments",
                status="pending_approval",
                limit=50,
                starting_after=request.args.get("after"),
            )
        ),
        notice=_notice(),
        problem=problem,
    ), status


def _proposal_page(
    *,
    form: Any,
    rows: list[entry_forms.LineRow],
    problem: str | None = None,
    status: int = 200,
    idempotency_key: str | None = None,
) -> Any:
    return render_template(
        "ledger/propose.html",
        form=form,
        rows=rows,
        owner_types=entry_forms.OWNER_TYPES,
        # One key per rendered form: a double submit replays the first answer.
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        problem=problem,
    ), status
