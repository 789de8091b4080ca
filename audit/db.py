"""The declarative base shared by the audit log and the review UI's models (no Flask here)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base; `review_ui.db.db` is built on it so both share one metadata."""
