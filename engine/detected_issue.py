"""Results as FHIR R4 DetectedIssue resources (`mgreview evaluate --format fhir`)."""

from __future__ import annotations

from typing import Any

# FHIR DetectedIssue.severity has three levels; each severity of engine.vocabulary.SEVERITIES maps onto one
# (tests/engine/test_severity_tables.py checks the table covers exactly those).
from engine.results import Rejected, Result

SEVERITY = {"contraindicated": "high", "major": "high", "moderate": "moderate", "minor": "low", "info": "low"}
FINDING_SYSTEM = "urn:mgreview:finding"


def as_bundle(result: Result) -> dict[str, Any]:
    """A collection Bundle of one DetectedIssue per finding; a rejected record becomes an OperationOutcome."""
    if isinstance(result, Rejected):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "invalid", "diagnostics": e["reason"], "expression": [e["field"]]}
                for e in result.errors
            ],
        }
        return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": outcome}]}
    patient = {"reference": f"Patient/{result.record_id}"} if result.record_id else None
    ruleset = result.ruleset
    entries = []
    for finding in result.findings:
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "id": f"{result.record_id}-{finding.id}".replace("_", "-").lower()[:64],
            "status": "final",
            "severity": SEVERITY[finding.severity],
            "code": {
                "coding": [{"system": FINDING_SYSTEM, "code": finding.id, "display": finding.severity}],
                "text": finding.id,
            },
            "detail": finding.message,
            "reference": f"urn:mgreview:ruleset:{ruleset['id']}:{ruleset['version']}:{ruleset['sha256']}",
            "evidence": [{"code": [{"text": f"rule {e['rule']}"}]} for e in finding.evidence],
        }
        if patient:
            issue["patient"] = patient
        entries.append({"resource": issue})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
