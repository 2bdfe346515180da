"""Reconciliation, for operators: runs (a settlement file or a bank statement each), the breaks as
cases, acting on a case (assign, note, resolve, write off), and the three-way view of a payment,
refund or payout (ledger, acquirer, bank).

Accounts decides everything. A write-off is an adjustment: below accounts' four-eyes amount it is
posted and the case is ``written_off`` at once; above it the case stays ``investigating`` until
another operator approves the adjustment on the ledger's adjustments page.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError
from services.console.web import entry_forms
from services.console.web.formatting import apis, attempt
from services.console.web.ledger import refusal_message
from services.console.web.security import current_staff, form_key, requires_role, staff_token

blp = Blueprint("reconciliation", __name__, url_prefix="/reconciliation")

# Accounts' case kinds and states (services/accounts/domain/reconciliation.py; a test keeps them the same).
CASE_KINDS = (
    "missing_in_ledger",
    "missing_at_gateway",
    "missing_in_bank",
    "amount_mismatch",
    "fee_mismatch",
    "duplicate",
    "unidentified",
    "balance_mismatch",
)
CASE_STATES = ("open", "investigating", "resolved", "written_off")
OPEN_STATES = ("open", "investigating")
ACTIONS = ("assign", "note", "resolve", "write-off")


@blp.get("")
@requires_role("operator")
def runs() -> Any:
    return render_template(
        "reconciliation/runs.html",
        runs=attempt(
            lambda: apis().accounts.get(
                staff_token(), "/v1/reconciliation/runs", limit=50, starting_after=request.args.get("after")
            )
        ),
    )


@blp.get("/runs/<id:run_id>")
@requires_role("operator")
def run(run_id: str) -> Any:
    accounts = apis().accounts
    token = staff_token()
    return render_template(
        "reconciliation/run.html",
        run=accounts.get(token, f"/v1/reconciliation/runs/{run_id}"),
        # The run's cases, filtered by accounts, a page at a time.
        cases=attempt(
            lambda: accounts.get(
                token,
                "/v1/reconciliation/cases",
                run_id=run_id,
                limit=50,
                starting_after=request.args.get("after"),
            )
        ),
    )


@blp.get("/cases")
@requires_role("operator")
def cases() -> Any:
    args = request.args
    chosen = {
        "kind": args.get("kind") if args.get("kind") in CASE_KINDS else None,
        "state": args.get("state") if args.get("state") in CASE_STATES else None,
        "min_age_days": args.get("min_age_days", type=int),
        "bank_code": args.get("bank_code", "").strip() or None,
        "gateway": args.get("gateway", "").strip() or None,
    }
    return render_template(
        "reconciliation/cases.html",
        page=attempt(
            lambda: apis().accounts.get(
                staff_token(),
                "/v1/reconciliation/cases",
                limit=50,
                starting_after=args.get("after"),
                **chosen,
            )
        ),
        chosen=chosen,
        next_args={name: value for name, value in chosen.items() if value is not None},
        kinds=CASE_KINDS,
        states=CASE_STATES,
    )


@blp.get("/cases/<id:case_id>")
@requires_role("operator")
def case(case_id: str) -> Any:
    return _case_page(case_id)


@blp.post("/cases/<id:case_id>/<any(assign, note, resolve, 'write-off'):action>")
@requires_role("operator")
def act(case_id: str, action: str) -> Any:
    form = request.form
    rows = entry_forms.rows_of(form)
    try:
        body = _body_of(action, form, rows)
        apis().accounts.post(
            staff_token(),
            f"/v1/reconciliation/cases/{case_id}/{action}",
            body,
            idempotency_key=form.get("idempotency_key", ""),
        )
    except entry_forms.FormProblem as problem:
        return _case_page(case_id, problem=str(problem), rows=rows, status=422)
    except ApiError as refused:
        if refused.status == 401:
            raise
        return _case_page(
            case_id,
            problem=refusal_message(refused),
            rows=rows,
            status=refused.page_status,
            idempotency_key=form_key(form.get("idempotency_key", ""), refused, suffix=f"-{action}"),
        )
    session["notice"] = f"case:{action}"
    return redirect(url_for("reconciliation.case", case_id=case_id))


def _body_of(action: str, form: Any, rows: list[entry_forms.LineRow]) -> dict[str, Any]:
    """What accounts expects for ``action``, from the form; a missing field is said here, in the
    person's language, before anything is sent."""
    if action == "assign":
        assignee = form.get("assignee", "").strip()
        if not assignee:
            raise entry_forms.FormProblem(_("Say whom the case goes to."))
        return {"assignee": assignee}
    note = form.get("note", "").strip()
    if action == "note":
        if not note:
            raise entry_forms.FormProblem(_("Write the note."))
        return {"note": note}
    if action == "resolve":
        if not note:
            raise entry_forms.FormProblem(_("Say what explains the case."))
        links = {name: form.get(name, "").strip() or None for name in ("run_id", "item_id", "entry_id")}
        return {"note": note, **{name: value for name, value in links.items() if value}}
    reason = form.get("reason", "").strip()
    if not reason:
        raise entry_forms.FormProblem(_("A write-off needs a reason."))
    entry_id = form.get("reverses_entry_id", "").strip()
    if entry_id:
        return {"reason": reason, "reverses_entry_id": entry_id}
    return {"reason": reason, "lines": entry_forms.lines_of(rows)}


def _notice(case: dict[str, Any]) -> str | None:
    notice = session.pop("notice", None)
    if notice == "case:write-off":
        if case.get("state") == "written_off":
            return _("Written off: the adjustment is posted.")
        return _("The write-off waits for another operator's approval (four-eyes rule).")
    if notice == "case:resolve":
        return _("The case is resolved.")
    if notice == "case:assign":
        return _("The case is assigned.")
    if notice == "case:note":
        return _("The note is added.")
    return None


def _case_page(
    case_id: str,
    *,
    problem: str | None = None,
    rows: list[entry_forms.LineRow] | None = None,
    status: int = 200,
    idempotency_key: str | None = None,
) -> Any:
    token = staff_token()
    accounts = apis().accounts
    case = accounts.get(token, f"/v1/reconciliation/cases/{case_id}")
    pending = None
    if case["state"] in OPEN_STATES:
        # A write-off above the four-eyes amount: its adjustment, to link to its approval.
        pending = attempt(
            lambda: accounts.get(
                token, "/v1/ledger/adjustments", status="pending_approval", case_id=case_id, limit=10
            )
        )
    return render_template(
        "reconciliation/case.html",
        case=case,
        pending=pending,
        open=case["state"] in OPEN_STATES,
        rows=rows or entry_forms.empty_rows(),
        owner_types=entry_forms.OWNER_TYPES,
        me=(current_staff() or {}).get("id", ""),
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        notice=_notice(case),
        problem=problem,
    ), status


@blp.get("/three-way")
@requires_role("operator")
def three_way() -> Any:
    object_id = request.args.get("object_id", "").strip()
    view = None
    if object_id:
        view = attempt(
            lambda: apis().accounts.get(staff_token(), "/v1/reconciliation/items", object_id=object_id)
        )
    return render_template("reconciliation/three_way.html", object_id=object_id, view=view)
