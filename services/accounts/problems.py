"""The problem codes only accounts answers (the shared ones are in ``shared.problem_codes``)."""

from __future__ import annotations

from shared.problem_codes import problem_code

SERVICE = ("accounts",)

# --- payouts --------------------------------------------------------------------------------------

INSUFFICIENT_FUNDS = problem_code(
    "insufficient_funds",
    409,
    "The amount is more than the available balance (the artisan's, or the marketplace's commission).",
    "Pay out at most the available balance; money still pending becomes available after the hold.",
    services=SERVICE,
)
NO_PAYOUT_ACCOUNT = problem_code(
    "no_payout_account",
    409,
    "There is no bank account on file to pay out to (or not the one named).",
    "Link a bank account first (onboarding), or name one of the artisan's own.",
    services=SERVICE,
)
PAYOUTS_NOT_ALLOWED = problem_code(
    "payouts_not_allowed",
    409,
    "The artisan cannot receive payouts: their KYC tier is 0, their KYC was rejected, or it is not known yet.",
    "Have the artisan complete KYC; just after a change, retry in a few seconds.",
    services=SERVICE,
)

# --- the ledger: adjustments and cases --------------------------------------------------------------

UNKNOWN_ACCOUNT = problem_code(
    "unknown_account",
    422,
    "A line names an account that is not in the chart of accounts.",
    "Name accounts as `GET /v1/ledger/accounts` lists them.",
    services=SERVICE,
)
UNBALANCED_ENTRY = problem_code(
    "unbalanced_entry",
    422,
    "The lines' debits and credits differ, or they cancel out so nothing would move.",
    "Send lines that sum to zero and move money between at least two accounts.",
    services=SERVICE,
)
ARTISAN_BALANCE_NEGATIVE = problem_code(
    "artisan_balance_negative",
    409,
    "The entry would take an artisan's balance below zero; nothing was posted (`rule_detail` says whose).",
    "Adjust a smaller amount, or cover it from the marketplace's reserve.",
    services=SERVICE,
)
TIER_CAP_EXCEEDED = problem_code(
    "tier_cap_exceeded",
    409,
    "The entry would take an artisan above the cap of their KYC tier; nothing was posted.",
    "Adjust a smaller amount.",
    services=SERVICE,
)
ALREADY_REVERSED = problem_code(
    "already_reversed",
    409,
    "The journal entry was reversed already.",
    "Nothing to do; read the reversing entry.",
    services=SERVICE,
)
REVERSAL_PENDING = problem_code(
    "reversal_pending",
    409,
    "A reversal of this entry waits for approval.",
    "Approve or reject that adjustment instead of proposing another.",
    services=SERVICE,
)
ADJUSTMENT_NOT_PENDING = problem_code(
    "adjustment_not_pending",
    409,
    "The adjustment is not waiting for approval (`adjustment_status` says what it is).",
    "Read the adjustment: it was approved, rejected or posted already.",
    services=SERVICE,
)
FOUR_EYES_REQUIRED = problem_code(
    "four_eyes_required",
    403,
    "An adjustment is approved by someone other than who proposed it.",
    "Another operator approves it.",
    services=SERVICE,
)
LEDGER_CASE_RESOLVED = problem_code(
    "ledger_case_resolved",
    409,
    "The ledger case is resolved already, or what it waits for posted meanwhile (it then resolves by itself).",
    "Nothing to do.",
    services=SERVICE,
)
LEDGER_CASE_WAITING = problem_code(
    "ledger_case_waiting",
    409,
    "The case waits for money the ledger will post by itself; it resolves when that posts.",
    "Wait, or propose an adjustment for the case (`case_id`) that takes its place.",
    services=SERVICE,
)
RESERVE_STILL_BELOW_ZERO = problem_code(
    "reserve_still_below_zero",
    409,
    "The marketplace's reserve is still below zero: the case stays open until it is back at zero.",
    "Top the reserve up, or propose an adjustment for the case that does.",
    services=SERVICE,
)
LEDGER_CASE_NEEDS_REPLAY = problem_code(
    "ledger_case_needs_replay",
    409,
    "The payment is missing from the ledger: an adjustment would count it twice once its event posts.",
    "Replay the payment's event (`hirfa payments replay`); the case resolves when it posts.",
    services=SERVICE,
)

# --- reconciliation ---------------------------------------------------------------------------------

MALFORMED_FILE = problem_code(
    "malformed_file",
    422,
    "The uploaded settlement file or statement is not what it claims to be; `errors` lists each line "
    "or XPath at fault.",
    "Fix the file (or upload the original from the gateway or the bank) and upload it again.",
    services=SERVICE,
)
CASE_STATE_CONFLICT = problem_code(
    "case_state_conflict",
    409,
    "The reconciliation case cannot do that from its state (resolving one written off, say).",
    "Read the case and act according to its state.",
    services=SERVICE,
)
ADJUSTMENTS_UNAVAILABLE = problem_code(
    "adjustments_unavailable",
    503,
    "Writing a case off needs ledger adjustments, which this deployment does not offer yet.",
    "Resolve the case another way, or retry once adjustments are enabled.",
    services=SERVICE,
)
