"""The read behind onboarding's personal-data export, as payments and accounts each serve it: one
route, ``GET /v1/artisans/{id}/personal-data``, that only onboarding's own token may call
(``personal_data:collect``). Each service gives what it holds and how to gather it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_smorest import Blueprint

from shared.auth.flask import require_scopes
from shared.auth.scopes import PERSONAL_DATA_COLLECT


def personal_data_blueprint(
    *, service: str, holds: str, across: str, gather: Callable[[str], dict[str, Any]]
) -> Blueprint:
    """``holds`` names what the answer carries (the OpenAPI description of its 200), ``across``
    ends the operation's summary ("" or ", across every marketplace"), and ``gather(artisan_id)``
    reads it in the service's unit of work."""
    blp = Blueprint(
        "personal_data",
        __name__,
        url_prefix="/v1/artisans",
        description="For onboarding (scope personal_data:collect): an artisan's data, for their export.",
    )

    def personal_data(artisan_id: str) -> dict[str, Any]:
        return gather(artisan_id)

    # flask-smorest reads the operation's summary and description from the view's docstring.
    personal_data.__doc__ = (
        f"Everything {service} holds about an artisan{across}.\n\n"
        "Only onboarding's own token reads it, to build the artisan's personal-data archive\n"
        "(``GET /v1/artisans/{id}/personal-data`` on onboarding)."
    )
    view: Any = require_scopes(PERSONAL_DATA_COLLECT)(personal_data)  # type: ignore[arg-type]
    view = blp.response(200, description=holds)(view)
    blp.route("/<string:artisan_id>/personal-data", methods=["GET"])(view)
    return blp
