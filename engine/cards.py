"""CDS Hooks cards from an evaluation, written for the prescriber who reads them.

One card per finding (minor and above, plus PEDIATRIC), most severe first. The summary (under 140
characters, never cut mid-word) starts with the finding's human title from the ruleset's `findings`
section and keeps the action: "Separate from levothyroxine by 4 h", "500 mg/day asked; at most 250
mg/day elemental". The detail is GitHub-flavoured Markdown in which every text that came from the
patient record or the ruleset is escaped, so it can never become a link, an image or HTML.

Suggestions, one per distinct action and each on one card only: remove the draft order (on the most
severe card that stops magnesium) or rewrite its dose to the cap (on the upper-limit card). The new dose
is written in the product's own terms, salt weight for a salt-named product (whole tablets when the
name states a strength), so reading the order back gives the elemental amount the card states. A
non-oral order (ROUTE_NOT_ORAL) gets no oral plan and no suggestion.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import dosage
from engine import vocabulary as vocab
from engine.vocabulary import SEVERITIES

INDICATOR = {"contraindicated": "critical", "major": "critical", "moderate": "warning", "minor": "info", "info": "info"}
SEVERITY_ORDER = SEVERITIES  # most severe first, declared once in engine.vocabulary
SUMMARY_LIMIT = 140  # CDS Hooks: summary "<140-character"
CARD_NAMESPACE = uuid.UUID("6a2f41a6-7f53-4a4e-9a37-4f0f3f4d8b10")
OVERRIDE_SYSTEM = "urn:mgreview:override-reason"
UCUM = "http://unitsofmeasure.org"
ALWAYS_SHOWN = frozenset({"PEDIATRIC", "ROUTE_NOT_ORAL"})  # a child's limit is worth a card even at "info"
URGENT_FINDINGS = frozenset({"RED_FLAG_SYMPTOMS", "HYPERMAGNESEMIA_TOXIC"})
# Evidence facts worth naming in a summary, with their label and unit.
_SUBJECT_FACTS = {
    "egfr_ml_min_1_73m2": ("eGFR", ""),
    "serum_mg_mmol_l": ("serum Mg", " mmol/L"),
    "age_years": ("age", " y"),
}
_AGE_FINDINGS = frozenset({"PEDIATRIC", "INFANT_NO_SUPPLEMENT", "EU_NO_UL_UNDER_4"})
_MEDICATION_FACTS = ("medication.ingredient", "medication.classes", "medication.product")
# Patient text quoted inside a ruleset message: "'{text}'" or "('{text}')". Left out of summaries.
_QUOTED = re.compile(r"\s*\('[^']*'\)|'[^']*'")


# --- text helpers -----------------------------------------------------------------------------------


def shorten(text: str, limit: int = SUMMARY_LIMIT - 1) -> str:
    """`text` in at most `limit` characters, cut at a word boundary with an ellipsis (never mid-word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and not text[limit - 1].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-(") + "…"


_MD_BACKSLASH = set("\\`*_[](){}#!|~+")
_MD_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def md_escape(value: Any) -> str:
    """Text as literal Markdown: no emphasis, links, images, autolinks or HTML; one line."""
    out: list[str] = []
    for ch in " ".join(str(value).split()):  # newlines (and U+2028) could start a heading or a list
        if ch in _MD_ENTITY:
            out.append(_MD_ENTITY[ch])
        elif ch in _MD_BACKSLASH:
            out.append("\\" + ch)
        else:
            out.append(ch)
    text = "".join(out)
    if text[:1] in ("-", "=") or re.match(r"^\d+[.)]", text):  # a list item or heading underline
        text = "\\" + text
    return text.replace(":", "&#58;") if "javascript" in text.lower() else text


def _number(value: Any) -> str:
    return f"{round(value, 2):g}" if isinstance(value, float) else str(value)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- product strength and the inverse of the dose reading ------------------------------------------

_UNITS = ("tablet", "capsule", "sachet", "lozenge")


def product_strength_mg(name: str) -> float | None:
    """The mg of magnesium (salt or element, as the name states it) in one tablet, capsule or sachet.

    Read by engine.dosage exactly as an order is read back ("Magnesium Oxide 400 MG Oral Tablet" -> 400), so a
    dose written in tablets reads back to the same amount; a per-mL strength ("400 MG/5ML") is not per unit.
    """
    strength = dosage.parse_strength(name)
    if strength is None or strength.unit != "mg" or strength.per_unit != "tablet" or strength.per_amount != 1:
        return None
    return strength.amount


def product_unit(name: str) -> str | None:
    """The countable unit a product name states (tablet, capsule, sachet, lozenge), if any."""
    lowered = name.lower()
    return next((u for u in _UNITS if u in lowered), None)


@dataclass(frozen=True)
class ProductDose:
    """A daily amount written in the product's terms: mg per dose as the product is labelled."""

    mg_per_dose: float  # salt weight for a salt-named product, elemental for an elemental-named one
    doses_per_day: int
    elemental_mg_per_day: float  # what reading the order back gives
    units_per_dose: int | None = None  # whole tablets (capsules, ...) when the name states a strength
    unit: str | None = None


def dose_in_product_terms(
    cap_elemental_mg: float, doses_per_day: int, *, basis: str, fraction: float | None, product_name: str
) -> ProductDose | None:
    """The largest dose in the product's terms whose elemental amount stays within the cap; None if none.

    The inverse of the reading in engine/fhir.py: the dose quantity (mg) times the doses per day is
    salt weight unless the product says elemental, and salt weight times the form's elemental fraction
    (the ruleset's, the highest one for an ambiguous salt) is elemental magnesium.
    """
    if basis == "elemental":
        fraction = 1.0
    if not fraction or fraction <= 0 or cap_elemental_mg <= 0 or doses_per_day < 1:
        return None
    product_mg_per_day = cap_elemental_mg / fraction
    strength, unit = product_strength_mg(product_name), product_unit(product_name)
    units: int | None = None
    if strength and unit:
        units = math.floor(product_mg_per_day / doses_per_day / strength + 1e-9)
    if units:
        mg_per_dose = units * strength  # type: ignore[operator]  # strength is set when units is
    else:
        units, unit = None, None
        mg_per_dose = math.floor(product_mg_per_day / doses_per_day)
    if mg_per_dose < 1:
        return None
    elemental = round(mg_per_dose * doses_per_day * fraction, 1)
    if elemental > cap_elemental_mg:  # rounding must never lift the dose over the cap
        return None
    return ProductDose(mg_per_dose, doses_per_day, elemental, units, unit)


# --- cards -------------------------------------------------------------------------------------------


def title_of(finding_id: str, titles: Mapping[str, Mapping[str, str]] | None) -> str:
    """The finding's human title from the ruleset (a v1 ruleset has none: the id, readable)."""
    entry = (titles or {}).get(finding_id) or {}
    return entry.get("title") or finding_id.replace("_", " ").capitalize()


def cards(
    result: dict[str, Any],
    *,
    hook_instance: str,
    draft_order: dict[str, Any] | None,
    sources_url: str,
    override_reasons: dict[str, str],
    titles: Mapping[str, Mapping[str, str]] | None = None,
    min_severity: str = "minor",
) -> list[dict[str, Any]]:
    """Cards for every finding at or above `min_severity` (and PEDIATRIC), most severe first."""
    plan = result["plan"]
    not_oral = any(f["id"] == "ROUTE_NOT_ORAL" for f in result["findings"])
    reasons = [{"system": OVERRIDE_SYSTEM, "code": code, "display": text} for code, text in override_reasons.items()]
    shown = [
        f
        for f in result["findings"]
        if f["id"] in ALWAYS_SHOWN or SEVERITY_ORDER.index(f["severity"]) <= SEVERITY_ORDER.index(min_severity)
    ]
    shown.sort(key=lambda f: (f["id"] != "ROUTE_NOT_ORAL", SEVERITY_ORDER.index(f["severity"])))
    facts = result.get("facts") or {}
    suggestions = {} if not_oral else _suggestions(shown, plan, facts, draft_order, hook_instance)
    out = []
    for finding in shown:
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{finding['id']}")),
            "summary": summary(finding, plan, facts, titles, not_oral=not_oral),
            "detail": detail(finding, plan, titles, not_oral=not_oral),
            "indicator": INDICATOR[finding["severity"]],
            "source": {
                "label": f"mgreview {result['ruleset']['id']} v{result['ruleset']['version']} "
                f"({', '.join(finding['sources'])})",
                "url": f"{sources_url}#{finding['sources'][0]}",
                "topic": {"system": "urn:mgreview:finding", "code": finding["id"]},
            },
            "overrideReasons": reasons,
        }
        if finding["id"] in suggestions:
            card["suggestions"] = [suggestions[finding["id"]]]
            card["selectionBehavior"] = "at-most-one"
        out.append(card)
    return out


def not_checked_card(reasons: list[str], *, hook_instance: str, sources_url: str) -> dict[str, Any]:
    """One critical card when the patient's record cannot be evaluated: the order was not checked.

    A CDS Hooks error would show the prescriber nothing, a silent pass; this card says why nothing was checked.
    """
    deceased = any("deceased" in reason for reason in reasons)
    return {
        "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:not-checked")),
        "summary": "Patient is recorded as deceased: no magnesium plan"
        if deceased
        else "Magnesium order not checked: the patient's record could not be read",
        "detail": "\n".join(f"- {md_escape(reason)}" for reason in reasons)
        + "\n\nNo interaction, dose or kidney check was made for this order.",
        "indicator": "critical",
        "source": {"label": "mgreview", "url": sources_url},
    }


def summary(
    finding: dict[str, Any],
    plan: dict[str, Any],
    facts: dict[str, Any],
    titles: Mapping[str, Mapping[str, str]] | None,
    *,
    not_oral: bool = False,
) -> str:
    """Title, the value it rests on, and the action, in under 140 characters."""
    fid = finding["id"]
    windows = [w for w in plan.get("separations") or [] if fid in str(w.get("finding", "")).split(", ")]
    if windows and fid.endswith("_SEPARATION") and not not_oral:
        return shorten("; ".join(_separation(w) for w in windows))
    title = title_of(fid, titles)
    subject = _subject(finding, facts)
    head = f"{title} ({subject})" if subject and subject.lower() not in title.lower() else title
    action = _action(finding, plan, not_oral=not_oral)
    return shorten(f"{head}: {action}" if action and ":" not in head else f"{head}. {_sentence(action)}")


def _separation(window: dict[str, Any]) -> str:
    drug, before, after = window["drug"], window.get("drug_before_mg_h"), window.get("drug_after_mg_h")
    if before is None and after is None:
        return f"Separate {drug} from magnesium"
    if before is None:
        return f"Take {drug} at least {_number(after)} h after magnesium"
    if after is None:
        return f"Take {drug} at least {_number(before)} h before magnesium"
    if before == after:
        return f"Separate from {drug} by {_number(before)} h"
    return f"Take {drug} {_number(before)} h before or {_number(after)} h after magnesium"


def _subject(finding: dict[str, Any], facts: dict[str, Any]) -> str | None:
    """The measured value or the medicine (its vocabulary name, never patient text) a finding rests on."""
    ingredients = {m.get("text"): m.get("ingredient") for m in facts.get("medications") or []}
    for item in finding.get("evidence") or []:
        for fact in _flat(item.get("facts") or []):
            name = str(fact.get("fact", "")).removeprefix("patient.")
            if name == "age_years" and finding["id"] not in _AGE_FINDINGS:
                continue
            if name in _SUBJECT_FACTS and isinstance(fact.get("value"), int | float):
                label, unit = _SUBJECT_FACTS[name]
                return f"{label} {_number(fact['value'])}{unit}"
            if fact.get("fact") in _MEDICATION_FACTS and finding["id"] != "UNRECOGNIZED_MEDICATION":
                ingredient = ingredients.get(fact.get("as_written"))
                if isinstance(ingredient, str) and ingredient not in ("", "none", "unknown"):
                    return ingredient
    return None


def _flat(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in facts:
        out.append(f)
        out += _flat(f.get("because") or [])
    return out


def _action(finding: dict[str, Any], plan: dict[str, Any], *, not_oral: bool) -> str:
    fid, cap = finding["id"], plan.get("max_elemental_mg_per_day") or 0
    if fid == "ROUTE_NOT_ORAL":
        return "no oral advice; the physician or hospital protocol decides"
    if not_oral:
        return _from_message(finding["message"]) or _first_sentence(finding["message"])
    if vocab.is_upper_limit_finding(fid):
        asked = plan.get("requested_elemental_mg_per_day")
        asked_text = f"{_number(asked)} mg/day asked; " if isinstance(asked, int | float) else ""
        limit = f"at most {_number(cap)} mg/day elemental" if cap > 0 else "no supplement without a physician"
        return asked_text + limit
    if fid == "PEDIATRIC":
        if cap > 0:
            return f"at most {_number(cap)} mg/day elemental; a physician supervises"
        return "no supplement without a physician"
    if fid in URGENT_FINDINGS and plan.get("urgent"):
        return "no magnesium; urgent medical assessment"
    if finding["severity"] == "contraindicated":
        return "no magnesium; a physician decides"
    action = _from_message(finding["message"])
    if action is None:
        stops = finding["severity"] == "major" and cap == 0
        return "no supplement without a physician" if stops else _first_sentence(finding["message"])
    return action


def _first_sentence(message: str) -> str:
    text = _QUOTED.sub("", message)
    return re.split(r"(?<=[a-z)])\.\s", text, maxsplit=1)[0].rstrip(".").strip()


def _from_message(message: str) -> str | None:
    """The action of a ruleset message: what follows the last colon of its first sentence (patient text
    left out), e.g. "... toxicity: check serum magnesium and keep 2 h between them"; None without one."""
    first = _first_sentence(message)
    return first.rsplit(": ", 1)[1] if ": " in first else None


def detail(
    finding: dict[str, Any],
    plan: dict[str, Any],
    titles: Mapping[str, Mapping[str, str]] | None = None,
    *,
    not_oral: bool = False,
) -> str:
    """The message, severity, evidence and the plan's limit as Markdown; every text escaped."""
    lines = [
        f"**{md_escape(title_of(finding['id'], titles))}**",
        "",
        md_escape(finding["message"]),
        "",
        f"Severity: **{md_escape(finding['severity'])}**.",
    ]
    for item in finding["evidence"]:
        facts = ", ".join(_facts(item["facts"]))
        if facts:
            lines.append(f"- rule {md_escape(item['rule'])}: {facts}")
    if finding.get("confidence") == "U":
        lines += ["", "Part of this rests on a source the reference marks unverified."]
    lines.append("")
    cap = plan.get("max_elemental_mg_per_day") or 0
    if not_oral:
        lines.append("Not an oral order: no oral plan and no dose suggestion.")
    elif cap > 0:
        lines.append(f"Suggested cap: {_number(cap)} mg elemental magnesium per day.")
    else:
        lines.append("No magnesium should be proposed without a physician.")
    return "\n".join(lines)


def _facts(facts: list[dict[str, Any]]) -> list[str]:
    """Evidence as escaped text, following derived facts to the facts that caused them."""
    out: list[str] = []
    for f in facts:
        if "op" in f:
            shown = _number(f.get("value"))  # display only
            out.append(md_escape(f"{f['fact']} = {shown} ({f['op']} {f['threshold']})"))
        elif "because" in f:
            out += _facts(f["because"])
    return out


# --- suggestions -----------------------------------------------------------------------------------


def _suggestions(
    shown: list[dict[str, Any]],
    plan: dict[str, Any],
    facts: dict[str, Any],
    draft: dict[str, Any] | None,
    hook_instance: str,
) -> dict[str, dict[str, Any]]:
    """Finding id -> its suggestion: each distinct action once, on the card it belongs to."""
    if draft is None or not draft.get("id"):
        return {}
    resource_id = f"MedicationRequest/{draft['id']}"
    cap = plan.get("max_elemental_mg_per_day") or 0
    out: dict[str, dict[str, Any]] = {}
    if cap == 0:
        stopper = next((f for f in shown if f["severity"] in ("contraindicated", "major")), None)
        if stopper is not None:
            out[stopper["id"]] = {
                "label": "Remove the magnesium order (a physician decides)",
                "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:delete:{resource_id}")),
                "isRecommended": True,
                "actions": [
                    {"type": "delete", "description": "Remove the draft magnesium order", "resourceId": resource_id}
                ],
            }
        return out
    above = next((f for f in shown if vocab.is_upper_limit_finding(f["id"])), None)
    if above is not None:
        update = _dose_update(draft, plan, facts.get("patient") or {}, hook_instance, resource_id)
        if update is not None:
            out[above["id"]] = update
    return out


def _dose_update(
    draft: dict[str, Any], plan: dict[str, Any], patient: dict[str, Any], hook_instance: str, resource_id: str
) -> dict[str, Any] | None:
    cap = float(plan["max_elemental_mg_per_day"])
    doses = max(int(plan.get("doses_per_day") or vocab.DIVIDED_DOSES_PER_DAY), 1)
    name = str(patient.get("supplement_form_text") or "")
    basis = patient.get("dose_basis") or ("elemental" if "elemental" in name.lower() else "salt")
    fraction = patient.get("elemental_fraction")
    dose = dose_in_product_terms(
        cap, doses, basis=basis, fraction=fraction if isinstance(fraction, int | float) else None, product_name=name
    )
    if dose is None:
        return None
    form = patient.get("supplement_form")
    what = f"magnesium {form}" if basis == "salt" and form not in (None, "", "none", "unknown") else "magnesium"
    if basis == "elemental":
        what = "elemental magnesium"
    units = (
        f" ({dose.units_per_dose} {dose.unit}{'s' if dose.units_per_dose != 1 else ''})" if dose.units_per_dose else ""
    )
    text = (
        f"{_number(dose.mg_per_dose)} mg {what}{units} {dose.doses_per_day} times a day "
        f"= {_number(dose.elemental_mg_per_day)} mg elemental magnesium per day (limit {_number(cap)} mg)"
    )
    updated = copy.deepcopy(draft)
    dosage = copy.deepcopy((updated.get("dosageInstruction") or [{}])[0])
    dosage["timing"] = {"repeat": {"frequency": dose.doses_per_day, "period": 1, "periodUnit": "d"}}
    dosage["doseAndRate"] = [{"doseQuantity": {"value": dose.mg_per_dose, "unit": "mg", "system": UCUM, "code": "mg"}}]
    dosage["text"] = text
    updated["dosageInstruction"] = [dosage]
    return {
        "label": shorten(f"Change to {text}", 120),
        "isRecommended": True,
        "uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:update:{resource_id}:{dose.mg_per_dose}")),
        "actions": [{"type": "update", "description": text, "resource": updated}],
    }
