"""What many tests share: the paths of the checkout, a healthy record to vary, reading results, running the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "intake.jsonl"
RULESETS = ROOT / "rulesets" / "magnesium"
DATA = ROOT / "tests" / "data"
EXTERNAL = ROOT.parent / "shared" / "external"  # inputs written elsewhere: Synthea bundles, CDS Hooks examples
SYNTHEA = EXTERNAL / "fhir"

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


def mgreview(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the engine's CLI as a user would, in a separate process."""
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True)


def lines(path: Path) -> list[Any]:
    """The JSON values of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
