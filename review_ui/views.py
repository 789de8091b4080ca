"""Blueprints and error pages (filled in step by step)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register blueprints, the user loader and error pages."""
    from audit import log  # noqa: F401  (the audit tables must be known to migrations)
    from review_ui import models  # noqa: F401
