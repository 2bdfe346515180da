"""Onboarding: artisans, KYC, bank accounts, API clients and the token issuer."""
