"""The ledger, for operators: cases with their parked events, the integrity check, the platform's
and marketplaces' account balances, and acting on a case with accounts' ledger API.

A case page shows what was refused or parked and how it ended. An open case that needs no money
movement is resolved with a note (``POST /v1/ledger/cases/{id}/resolve``); a case that does is
resolved by an adjustment proposed for it (``case_id``): a reversal of a journal entry or lines
between named accounts, with a reason. Up to accounts' four-eyes amount it is posted at once (and
the case resolved); above it, it waits in ``pending_approval`` for another operator, who approves
or rejects it on the adjustments page. On a waiting case the adjustment takes the place of the
parked event, which then never posts: the page says so before anyone proposes. The rules are
accounts': the console forwards the person's token and shows each refusal (403
``four_eyes_required`` when the proposer approves their own, 409 ``ledger_case_resolved`` (on an
approval: reject it, its case was settled another way), ``ledger_case_waiting``,
``reserve_still_below_zero``) as a message on the page.
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
LEDGER_CASE_PREFIX = "lc_"


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
        platform_accounts=attempt(
            lambda: accounts.get(token, "/v1/ledger/accounts", owner_type="platform", limit=100)
        ),
        marketplace_accounts=attempt(
            lambda: accounts.get(token, "/v1/ledger/accounts", owner_type="marketplace", limit=100)
        ),
        reserves=attempt(lambda: accounts.get(token, "/v1/ledger/reserves", below_zero="true", limit=50)),
    )


# --- one case ----------------------------------------------------------------------------------------


@blp.get("/cases/<id:case_id>")
@requires_role("operator")
def case(case_id: str) -> Any:
    return _case_page(case_id)


@blp.post("/cases/<id:case_id>/resolve")
@requires_role("operator")
def resolve_case(case_id: str) -> Any:
    note = request.form.get("note", "").strip()
    sent_key = request.form.get("idempotency_key", "")
    if not note:
        return _case_page(case_id, problem=_("Say why the case needs nothing more."), status=422)
    try:
        apis().accounts.post(
            staff_token(), f"/v1/ledger/cases/{case_id}/resolve", {"note": note}, idempotency_key=sent_key
        )
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _case_page(
            case_id,
            problem=refusal_message(refused),
            status=refused.page_status,
            note=note,
            idempotency_key=form_key(sent_key, refused),
        )
    session["notice"] = "case:resolved"
    return redirect(url_for("ledger.case", case_id=case_id))


def _case_page(
    case_id: str,
    *,
    problem: str | None = None,
    status: int = 200,
    note: str = "",
    idempotency_key: str | None = None,
) -> Any:
    accounts = apis().accounts
    token = staff_token()
    found = accounts.get(token, f"/v1/ledger/cases/{case_id}")  # a 404 is the page's 404
    return render_template(
        "ledger/case.html",
        case=found,
        adjustments=attempt(lambda: accounts.get(token, "/v1/ledger/adjustments", case_id=case_id, limit=20)),
        notice=_notice(),
        problem=problem,
        note=note,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    ), status


# --- adjustments -----------------------------------------------------------------------------------


@blp.get("/adjustments")
@requires_role("operator")
def adjustments() -> Any:
    return _adjustments_page()


@blp.get("/adjustments/new")
@requires_role("operator")
def new_adjustment() -> Any:
    case_id = request.args.get("case_id", "")
    case_id = case_id if case_id.startswith(LEDGER_CASE_PREFIX) else ""
    reason = _("Ledger case %(case)s", case=case_id) if case_id else ""
    return _proposal_page(
        form={
            "kind": "reversal",
            "reason": reason,
            "reverses_entry_id": request.args.get("entry_id", ""),
            "case_id": case_id,
        },
        rows=entry_forms.empty_rows(),
    )


@blp.post("/adjustments")
@requires_role("operator")
def propose() -> Any:
    form = request.form
    rows = entry_forms.rows_of(form)
    kind = form.get("kind", "")
    reason = form.get("reason", "").strip()
    case_id = form.get("case_id", "").strip()
    body: dict[str, Any] = {"reason": reason}
    if case_id:
        body["case_id"] = case_id
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
    if case_id:
        return redirect(url_for("ledger.case", case_id=case_id))
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
        if decision == "approve" and refused.code == "ledger_case_resolved":
            # Its case was settled another way while it waited: it can never post, only be rejected.
            problem = _(
                "This adjustment's ledger case was resolved another way while it waited, so it can no "
                "longer be approved (the same money would post twice). Reject it to take it off this list."
            )
        else:
            problem = refusal_message(refused)
        return _adjustments_page(problem=problem, status=refused.page_status)
    session["notice"] = f"adjustment:{'posted' if decision == 'approve' else 'rejected'}"
    return redirect(url_for("ledger.adjustments"))


def refusal_message(refused: ApiError) -> str:
    """Accounts' refusal of an adjustment (or a write-off), in words an operator can act on."""
    if refused.code == "four_eyes_required":
        return _(
            "You cannot approve this adjustment: you proposed it. Another operator must approve it "
            "(four-eyes rule)."
        )
    if refused.code == "ledger_case_resolved":
        return _("This ledger case is resolved already: nothing more is posted or noted for it.")
    if refused.code == "ledger_case_waiting":
        return _(
            "This case waits for its money to post by itself, so a note cannot resolve it. An "
            "adjustment proposed for it would take the place of its parked event."
        )
    if refused.code == "reserve_still_below_zero":
        return _(
            "The marketplace's reserve is still below zero, so a note cannot resolve this case: it "
            "resolves when the reserve is back at zero (a top-up, or an adjustment proposed for it)."
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
    if notice == "case:resolved":
        return _("The case is resolved, with your note.")
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
