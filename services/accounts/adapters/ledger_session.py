"""What a transaction remembers about the ledger: the owners whose accounts it knows to exist, and
the platform's fee terms of the marketplaces whose payments it posted.

A batch of events about one artisan then asks the database once whether their accounts are open.
Accounts are never deleted, so this stays true until the transaction ends, except that a rollback
(of the transaction or of any savepoint) may undo an account's opening: the session hooks forget
everything then, and when the transaction ends.

The hooks belong to the session factory: ``install_ledger_session_hooks`` is called by the
composition root for the factory every posting path uses. A session from a factory without them
remembers nothing (and asks the database every time), so a forgotten installation costs
statements, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_KNOWN_OWNERS = "hirfa.accounts.owners_with_ledger_accounts"
_HOOKS_INSTALLED = "hirfa.accounts.ledger_session_hooks"
_FEE_TERMS = "hirfa.accounts.platform_fee_terms"


def install_ledger_session_hooks(session_factory: sessionmaker[Any]) -> None:
    """Make the sessions of ``session_factory`` forget the owners they know on any rollback and at
    the end of every transaction, and so allow them to remember (idempotent)."""
    info = dict(session_factory.kw.get("info") or {})
    if info.get(_HOOKS_INSTALLED):
        return
    sa.event.listen(session_factory, "after_soft_rollback", _forget_owners_after_a_rollback)
    sa.event.listen(session_factory, "after_transaction_end", _forget_owners_after_the_transaction)
    session_factory.configure(info={**info, _HOOKS_INSTALLED: True})


def remember_owners(session: Session, owners: Iterable[tuple[str, str]]) -> None:
    """Note (owner type, owner id) of owners whose ledger accounts exist in this transaction (or
    were added to it)."""
    if not session.info.get(_HOOKS_INSTALLED):
        return  # nothing would forget them after a rollback
    known = session.info.get(_KNOWN_OWNERS)
    if known is None:
        known = session.info[_KNOWN_OWNERS] = set()
    known.update(owners)


def owner_has_known_accounts(session: Session, owner_type: str, owner_id: str) -> bool:
    return (owner_type, owner_id) in session.info.get(_KNOWN_OWNERS, ())


def remembered_fee_terms(session: Session) -> dict[str, tuple[int, int]] | None:
    """The transaction's memory of marketplaces' fee terms (None: the session cannot remember)."""
    if not session.info.get(_HOOKS_INSTALLED):
        return None
    return session.info.setdefault(_FEE_TERMS, {})


def _forget_owners_after_a_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_KNOWN_OWNERS, None)
    session.info.pop(_FEE_TERMS, None)


def _forget_owners_after_the_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_KNOWN_OWNERS, None)
        session.info.pop(_FEE_TERMS, None)
