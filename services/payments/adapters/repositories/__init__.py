"""The queries that load and lock payments' aggregates, by name, so the service layer reads in
domain words (``payments.locked(session, payment_id)``). One module per aggregate.

A locked read always reads the row afresh (``populate_existing``): an object this session loaded
earlier, unlocked, is never served stale from the identity map once the lock is held.
"""
