"""Serving the review UI: the development server for the demo, gunicorn with worker processes in production."""

from __future__ import annotations

import os
from typing import Any

from werkzeug.serving import WSGIRequestHandler


class QuietHandler(WSGIRequestHandler):
    """The development server without its version in the Server header."""

    def version_string(self) -> str:
        return "mgreview"


def default_workers() -> int:
    """Two worker processes per core, at most 8 (each compiles the ruleset once and keeps a DB pool)."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def production_options(host: str, port: int, workers: int, threads: int, access_log: bool) -> dict[str, Any]:
    """gunicorn settings: gthread workers, bounded request sizes, X-Forwarded-* trusted from loopback only."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "forwarded_allow_ips": "127.0.0.1,::1",
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "proc_name": "mgreview",
    }


def serve_production(options: dict[str, Any]) -> None:
    """Run gunicorn in this process (the arbiter); each worker builds its own app (no connections shared by fork)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from review_ui import create_app

            return create_app()

    Server().run()
