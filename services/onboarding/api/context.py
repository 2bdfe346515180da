"""The views' one way to onboarding's wired parts (the context ``bootstrap`` built for this app)."""

from __future__ import annotations

from flask import current_app

from services.onboarding.context import OnboardingContext


def service_context() -> OnboardingContext:
    context = current_app.extensions["hirfa"]
    assert isinstance(context, OnboardingContext)
    return context
