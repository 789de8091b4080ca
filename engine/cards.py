"""CDS Hooks cards from an evaluation: one card per finding, indicator by severity, suggestions that
rewrite the draft magnesium order to the safe dose (or remove it), override reasons as codings."""

from __future__ import annotations

import copy
import uuid
from typing import Any

INDICATOR = {"contraindicated": "critical", "major": "critical", "moderate": "warning", "minor": "info", "info": "info"}
SUMMARY_LIMIT = 140  # CDS Hooks: summary "<140-character"
CARD_NAMESPACE = uuid.UUID("6a2f41a6-7f53-4a4e-9a37-4f0f3f4d8b10")
OVERRIDE_SYSTEM = "urn:mgreview:override-reason"


def _summary(finding: dict[str, Any]) -> str:
    text = f"{finding['id'].replace('_', ' ').capitalize()}: {finding['message']}"
    return text if len(text) < SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 2].rstrip() + "…"


def _detail(finding: dict[str, Any], plan: dict[str, Any]) -> str:
    lines = [finding["message"], "", f"Severity: **{finding['severity']}**."]
    for item in finding["evidence"]:
        facts = ", ".join(_facts(item["facts"]))
        if facts:
            lines.append(f"- rule {item['rule']}: {facts}")
    if finding.get("confidence") == "U":
        lines += ["", "Part of this rests on a source the reference marks unverified."]
    lines.append("")
    lines.append(f"Suggested cap: {plan['max_elemental_mg_per_day']} mg elemental magnesium per day.")
    return "\n".join(lines)


def _facts(facts: list[dict[str, Any]]) -> list[str]:
    """Evidence as text, following derived facts to the facts that caused them."""
    out: list[str] = []
    for f in facts:
        if "op" in f:
            value = f.get("value")
            shown = f"{round(value, 2):g}" if isinstance(value, float) else value  # display only
            out.append(f"{f['fact']} = {shown} ({f['op']} {f['threshold']})")
        elif "because" in f:
            out += _facts(f["because"])
    return out


def cards(
    result: dict[str, Any],
    *,
    hook_instance: str,
    draft_order: dict[str, Any] | None,
    sources_url: str,
    override_reasons: dict[str, str],
    min_severity: str = "minor",
) -> list[dict[str, Any]]:
    """Cards for every finding at or above `min_severity`, most severe first."""
    order = ["contraindicated", "major", "moderate", "minor", "info"]
    plan = result["plan"]
    reasons = [{"system": OVERRIDE_SYSTEM, "code": code, "display": text} for code, text in override_reasons.items()]
    out = []
    for finding in result["findings"]:
        if order.index(finding["severity"]) > order.index(min_severity):
            continue
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{finding['id']}")),
            "summary": _summary(finding),
            "detail": _detail(finding, plan),
            "indicator": INDICATOR[finding["severity"]],
            "source": {
                "label": f"mgreview {result['ruleset']['id']} v{result['ruleset']['version']} "
                f"({', '.join(finding['sources'])})",
                "url": f"{sources_url}#{finding['sources'][0]}",
                "topic": {"system": "urn:mgreview:finding", "code": finding["id"]},
            },
            "overrideReasons": reasons,
        }
        suggestion = _suggestion(finding, plan, draft_order)
        if suggestion:
            card["suggestions"] = [suggestion]
            card["selectionBehavior"] = "at-most-one"
        out.append(card)
    return out


def _suggestion(finding: dict[str, Any], plan: dict[str, Any], draft: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rewrite the draft order to the cap, or remove it when no supplement may be proposed."""
    if draft is None or not draft.get("id"):
        return None
    resource_id = f"MedicationRequest/{draft['id']}"
    cap = plan["max_elemental_mg_per_day"]
    if cap == 0 and finding["severity"] in ("contraindicated", "major"):
        return {
            "label": "Remove the magnesium order (a physician decides)",
            "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"delete:{resource_id}")),
            "isRecommended": True,
            "actions": [
                {"type": "delete", "description": "Remove the draft magnesium order", "resourceId": resource_id}
            ],
        }
    if finding["id"].startswith("DOSE_ABOVE_UL") and cap > 0:
        doses = max(int(plan.get("doses_per_day") or 2), 1)
        updated = copy.deepcopy(draft)
        dosage = (updated.get("dosageInstruction") or [{}])[0]
        dosage["timing"] = {"repeat": {"frequency": doses, "period": 1, "periodUnit": "d"}}
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": round(cap / doses, 1),
                    "unit": "mg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg",
                }
            }
        ]
        dosage["text"] = f"{round(cap / doses, 1)} mg elemental magnesium {doses} times a day (max {cap} mg/day)"
        updated["dosageInstruction"] = [dosage]
        return {
            "label": f"Change to {cap} mg/day in {doses} doses",
            "isRecommended": True,
            "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"update:{resource_id}:{cap}")),
            "actions": [{"type": "update", "description": dosage["text"], "resource": updated}],
        }
    return None
