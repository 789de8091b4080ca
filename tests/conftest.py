"""Shared fixtures: one compiled evaluator for the session, and a helper to evaluate a record."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.evaluate import Evaluator

BASE_RECORD: dict[str, Any] = {
    "id": "T1",
    "age_years": 45,
    "sex": "female",
    "egfr_ml_min_1_73m2": 95,
    "serum_magnesium": {"value": 0.85, "unit": "mmol/L"},
    "medications": [],
    "conditions": [],
    "symptoms": [],
    "supplement": {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental"},
    "jurisdiction": "US",
}


@pytest.fixture(scope="session")
def evaluator() -> Evaluator:
    """The newest published ruleset, compiled once."""
    return Evaluator()


def record(**changes: Any) -> dict[str, Any]:
    """A healthy adult record with `changes` applied; a value of None removes the field."""
    out = copy.deepcopy(BASE_RECORD)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def finding(result: dict[str, Any], finding_id: str) -> dict[str, Any] | None:
    """The finding with this id in a result, or None."""
    return next((f for f in result.get("findings", []) if f["id"] == finding_id), None)


def ids(result: dict[str, Any]) -> set[str]:
    """Every finding id of a result."""
    return {f["id"] for f in result.get("findings", [])}
