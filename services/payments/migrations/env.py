"""Alembic environment for the payments service (run through `hirfa payments db upgrade`)."""

from services.payments.adapters.orm import Base
from shared.db import run_alembic_environment

run_alembic_environment(Base.metadata)
