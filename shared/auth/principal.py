"""Who is calling: the verified claims of a bearer token."""

from __future__ import annotations

import dataclasses

from shared.auth.scopes import Role


@dataclasses.dataclass(frozen=True)
class Principal:
    client_id: str
    role: Role
    scopes: frozenset[str]
    token_id: str
    # A bank partner's client is bound to one bank (three-digit Moroccan bank code, the token's
    # ``bank_code`` claim): it sees that bank's client-funds account, statements, reconciliation
    # runs and cases, and the artisans paid out at that bank, nothing else.
    bank_code: str | None = None
    # An artisan token's ``lang`` claim (fr, ar, en): the language of the problems the artisan is
    # shown when the request sends no Accept-Language (their preferred_language at sign-in).
    language: str | None = None

    def has_scopes(self, *required: str) -> bool:
        return set(required) <= self.scopes

    @property
    def is_marketplace(self) -> bool:
        return self.role == Role.MARKETPLACE

    @property
    def is_bank_partner(self) -> bool:
        return self.role == Role.BANK_PARTNER
