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

    def has_scopes(self, *required: str) -> bool:
        return set(required) <= self.scopes

    @property
    def is_marketplace(self) -> bool:
        return self.role == Role.MARKETPLACE
