"""Running a sandbox as its own process: ``python -m sandbox.<name> [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from flask import Flask

from shared.logging import configure_logging


def serve(
    name: str,
    env_prefix: str,
    default_port: int,
    create_app: Callable[[], Flask],
    stop_background_work: Callable[[Flask], None],
    description: str | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m sandbox.{name}", description=description)
    parser.add_argument("--host", default=os.environ.get(f"{env_prefix}HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get(f"{env_prefix}PORT", str(default_port)))
    )
    arguments = parser.parse_args()

    configure_logging(f"{name}-sandbox", json_logs=False)
    app = create_app()
    try:
        # One process, threaded: the state is in memory, so there must be exactly one copy of it.
        app.run(host=arguments.host, port=arguments.port, threaded=True, use_reloader=False)
    finally:
        stop_background_work(app)
