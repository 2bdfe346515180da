"""Who is calling: the verified claims of a bearer token."""

from __future__ import annotations

import dataclasses
import hashlib
import re

from shared.auth.scopes import ROLE_SCOPES, STAFF_ROLES, Role

# A Moroccan bank code: the first three digits of a RIB.
_BANK_CODE = re.compile(r"[0-9]{3}")


def is_bank_code(value: object) -> bool:
    """Whether ``value`` is a three-digit bank code (the ``bank_code`` claim, ``bank:{code}``)."""
    return isinstance(value, str) and _BANK_CODE.fullmatch(value) is not None


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
    # The language the token's ``lang`` claim asks for (an artisan's preferred language, e.g.
    # ``fr`` or ``ar``), when it has one: a default for what the service writes for people.
    lang: str | None = None
    # An artisan's token is issued to one of their devices (the ``device_id`` claim): the device's
    # Idempotency-Keys are its own, and revoking the device ends its sessions.
    device_id: str | None = None
    # A staff member's name (the token's ``name`` claim), for audit trails that show people.
    name: str | None = None

    def has_scopes(self, *required: str) -> bool:
        return set(required) <= self.scopes

    @property
    def is_marketplace(self) -> bool:
        return self.role == Role.MARKETPLACE

    @property
    def is_bank_partner(self) -> bool:
        return self.role == Role.BANK_PARTNER

    @property
    def is_artisan(self) -> bool:
        return self.role == Role.ARTISAN

    @property
    def is_staff(self) -> bool:
        return self.role == Role.STAFF

    def acts_as(self, role: Role) -> bool:
        """Whether the caller may do what ``role`` does: an API client of that role, or a staff
        member holding it (a person's roles travel as their scopes, so a staff token acts as a
        compliance officer or an operator when it carries every scope of that role)."""
        if self.role == role:
            return True
        return self.is_staff and role in STAFF_ROLES and self.scopes >= ROLE_SCOPES[role]

    @property
    def idempotency_scope(self) -> str:
        """Whose Idempotency-Keys these are: the API client's, or for an artisan one device's (keys
        are generated on the phone, so two phones of one artisan never collide). At most 64 chars."""
        if self.is_artisan and self.device_id:
            digest = hashlib.sha256(self.device_id.encode()).hexdigest()[:24]
            return f"{self.client_id[:38]}/{digest}"
        return self.client_id
