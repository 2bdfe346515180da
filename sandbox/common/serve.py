"""Running a sandbox as its own process: ``python -m sandbox.<name> [--host H] [--port P] [--threads N]``.

Served by gunicorn (one threaded worker), as the services are, so that what a benchmark through a
sandbox measures is Hirfa rather than a development server. One worker only: the sandbox's state
is in memory, so a second worker would be a second, different counterpart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from shared.logging import configure_logging

DEFAULT_THREADS = 16


class SandboxServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn around one sandbox app, built in the worker (its background threads, which send
    callbacks, must live in the process that serves) and stopped when the worker exits."""

    def __init__(
        self,
        create_app: Callable[[], Flask],
        stop_background_work: Callable[[Flask], None],
        options: dict[str, Any],
    ) -> None:
        self._create_app = create_app
        self._stop_background_work = stop_background_work
        self._options = options
        self._app: Flask | None = None
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)
        self.cfg.set("worker_exit", self._worker_exit)

    def load(self) -> Flask:
        self._app = self._create_app()
        return self._app

    def _worker_exit(self, _arbiter: Any, _worker: Any) -> None:
        if self._app is not None:
            self._stop_background_work(self._app)


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
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get(f"{env_prefix}THREADS", str(DEFAULT_THREADS))),
        help="requests served at once",
    )
    arguments = parser.parse_args()

    configure_logging(f"{name}-sandbox", json_logs=False)
    options = {
        "bind": f"{arguments.host}:{arguments.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": max(1, arguments.threads),
        "graceful_timeout": 5,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": f"{name}-sandbox",
        # Several sandboxes and services share a host: gunicorn's control socket would collide.
        "control_socket_disable": True,
    }
    SandboxServer(create_app, stop_background_work, options).run()
