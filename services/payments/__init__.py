"""Payments: card and mobile-wallet payments, refunds, disputes, gateway adapters, webhooks."""
