"""Alembic environment for the accounts service (run through `hirfa accounts db upgrade`)."""

from services.accounts.adapters.orm import Base
from shared.db import run_alembic_environment

run_alembic_environment(Base.metadata)
