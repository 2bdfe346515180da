"""Alembic environment for the onboarding service (run through `hirfa onboarding db upgrade`)."""

from services.onboarding.adapters.orm import Base
from shared.db import run_alembic_environment

run_alembic_environment(Base.metadata)
