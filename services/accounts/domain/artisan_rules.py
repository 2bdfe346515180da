"""What no journal entry may do to an artisan: take an account below zero, or raise what they hold
above their KYC tier's cap.

Pure: the caller locks the artisan's accounts and reads their cap, these rules decide on the numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from services.accounts.domain.ledger import AccountRef, shown_balance
from shared.kyc import KYC_ACTIVE


class BalanceRuleViolation(Exception):
    """The entry would take an artisan below zero or above their cap: nothing is posted."""

    def __init__(self, rule: str, detail: dict[str, Any]) -> None:
        super().__init__(rule)
        self.rule = rule
        self.detail = detail


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountBalance:
    normal_side: str
    balance: int  # stored: positive = debit

    @property
    def shown(self) -> int:
        return shown_balance(self.balance, self.normal_side)


def artisan_cap(cap_amount: int | None, kyc_status: str | None) -> int:
    """What an artisan may hold: their tier's cap while their KYC is active; nothing without known
    limits, or once KYC is rejected or suspended."""
    if cap_amount is None or kyc_status != KYC_ACTIVE:
        return 0
    return cap_amount


def check_artisan_rules(
    accounts: Mapping[AccountRef, AccountBalance], caps: Mapping[str, int], amounts: Mapping[AccountRef, int]
) -> None:
    """No artisan account below zero; an artisan's total never raised above their tier cap.

    ``accounts``: the entry's accounts and every account of its artisans (in its currency), as they
    stand; ``caps``: each artisan's cap (missing: 0); ``amounts``: the entry's signed amount per
    account. Raises ``BalanceRuleViolation``.
    """
    artisans = {ref.owner_id for ref in amounts if ref.owner_type == "artisan"}
    for artisan_id in artisans:
        delta_total = 0
        for ref, amount in amounts.items():
            if ref.owner_type == "artisan" and ref.owner_id == artisan_id:
                after = shown_balance(accounts[ref].balance + amount, accounts[ref].normal_side)
                if after < 0:
                    raise BalanceRuleViolation(
                        "artisan_balance_negative",
                        {"artisan_id": artisan_id, "account": ref.kind, "balance_after": after},
                    )
                delta_total += -amount  # credit-normal: a credit (negative) adds to what they hold
        if delta_total <= 0:
            continue  # money leaving an artisan never breaks the cap
        # Everything the artisan holds in this currency: all their accounts are locked.
        held = sum(
            -account.balance
            for ref, account in accounts.items()
            if ref.owner_type == "artisan" and ref.owner_id == artisan_id
        )
        total_after = held + delta_total
        cap = caps.get(artisan_id, 0)
        if total_after > cap:
            raise BalanceRuleViolation(
                "tier_cap_exceeded", {"artisan_id": artisan_id, "total_after": total_after, "cap": cap}
            )
