"""Accounts: the double-entry ledger, balances, payouts, reconciliation and statements."""
