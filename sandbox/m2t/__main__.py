"""``python -m sandbox.m2t [--host H] [--port P]``: run the M2T gateway sandbox as a separate process."""

from __future__ import annotations

import argparse
import os

from sandbox.m2t.app import create_app, stop_background_work
from shared.logging import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.m2t", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("M2T_SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("M2T_SANDBOX_PORT", "8010")))
    arguments = parser.parse_args()

    configure_logging("m2t-sandbox", json_logs=False)
    app = create_app()
    try:
        # One process, threaded: the state is in memory, so there must be exactly one copy of it.
        app.run(host=arguments.host, port=arguments.port, threaded=True, use_reloader=False)
    finally:
        stop_background_work(app)


if __name__ == "__main__":
    main()
