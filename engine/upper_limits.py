"""The upper-limit table of a ruleset: its check, and the rules each row expands into.

Each row names a jurisdiction, an age band and a tolerable upper limit (mg/day of supplemental
elemental magnesium). The clinical text of the generated rules is declared once, in LIMIT_RULES.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from string import Template
from typing import Any

from engine import vocabulary as vocab
from engine.errors import RulesetError

ROW_KEYS = frozenset(
    {"id", "jurisdiction", "age_min_years", "age_below_years", "ul_mg", "finding", "sources", "confidence", "note"}
)
JURISDICTIONS = ("US", "EU")


@dataclass(frozen=True)
class LimitRule:
    """One rule generated per upper-limit row.

    `description` and `message` are templates: `$where` is the jurisdiction and `$ul` the limit in mg/day;
    `{field}` placeholders stay for the evaluation to fill from the matched patient fact.
    """

    suffix: str
    description: str
    when: tuple[tuple[str, str, str], ...]  # extra [field, op, value] after the age band; value "$ul" is the limit
    severity: str | None = None
    message: str = ""
    message_nl: str = ""  # the message in Dutch ($where_nl: the jurisdiction in Dutch), from BILINGUAL_SINCE_VERSION
    description_nl: str = ""
    counts_other_only: bool = False  # generated only by versions that count magnesium already taken
    oral_only: bool = False  # from the plan contract on, an order that is not oral gets no oral upper limit


_NOT_ORAL = ("supplement_route", "!=", "not_oral")

# REFERENCE §1.5 and §8: a dose above the limit is DOSE_ABOVE_UL_*, moderate, and the plan caps at the limit.
LIMIT_RULES: tuple[LimitRule, ...] = (
    LimitRule(
        "",
        "$where upper limit $ul mg/day applies to this age band",
        (),
        description_nl="$where_nl-bovengrens van $ul mg/dag geldt voor deze leeftijdsgroep",
    ),
    LimitRule(
        "_EXCEEDED",
        "requested supplemental Mg is above the $where upper limit",
        (("supplement_dose_elemental_mg", ">", "$ul"),),
        severity="moderate",
        message=(
            "The requested {supplement_dose_elemental_mg} mg/day of elemental magnesium is above the "
            "$where upper limit of $ul mg/day for supplemental magnesium at this age; the plan caps the dose at "
            "the limit$ending"
        ),
        message_nl=(
            "De gevraagde {supplement_dose_elemental_mg} mg/dag elementair magnesium ligt boven de "
            "$where_nl-bovengrens van $ul mg/dag voor magnesium uit supplementen op deze leeftijd; het plan "
            "begrenst de dosis op de bovengrens min het magnesium dat al wordt ingenomen."
        ),
        description_nl="gevraagd supplementair Mg ligt boven de $where_nl-bovengrens",
        oral_only=True,
    ),
    LimitRule(
        "_EXCEEDED_WITH_OTHER",
        "requested plus magnesium already taken is above the $where upper limit",
        (("supplement_dose_elemental_mg", "<=", "$ul"), ("total_supplemental_mg_per_day", ">", "$ul")),
        severity="moderate",
        message=(
            "The requested {supplement_dose_elemental_mg} mg/day plus {other_mg_elemental_mg_per_day} mg/day "
            "of magnesium already taken from other products makes {total_supplemental_mg_per_day} mg/day, "
            "above the $where upper limit of $ul mg/day for supplemental magnesium at this age; the plan "
            "caps the supplement at the limit minus what is already taken."
        ),
        message_nl=(
            "De gevraagde {supplement_dose_elemental_mg} mg/dag plus {other_mg_elemental_mg_per_day} mg/dag "
            "magnesium dat al uit andere middelen wordt ingenomen, is samen {total_supplemental_mg_per_day} "
            "mg/dag, boven de $where_nl-bovengrens van $ul mg/dag voor magnesium uit supplementen op deze "
            "leeftijd; het plan begrenst het supplement op de bovengrens min wat al wordt ingenomen."
        ),
        description_nl="gevraagd plus al ingenomen magnesium ligt boven de $where_nl-bovengrens",
        counts_other_only=True,
    ),
    LimitRule(
        "_EXCEEDED_BY_OTHER",
        "magnesium already taken is above the $where upper limit on its own",
        (("other_mg_elemental_mg_per_day", ">", "$ul"),),
        severity="moderate",
        message=(
            "The magnesium already taken from other products ({other_mg_elemental_mg_per_day} mg/day) is "
            "above the $where upper limit of $ul mg/day on its own: the plan proposes no further "
            "magnesium; review the other products."
        ),
        message_nl=(
            "Het magnesium dat al uit andere middelen wordt ingenomen ({other_mg_elemental_mg_per_day} mg/dag), "
            "ligt op zichzelf al boven de $where_nl-bovengrens van $ul mg/dag: het plan stelt geen extra "
            "magnesium voor; beoordeel de andere middelen."
        ),
        description_nl="al ingenomen magnesium ligt op zichzelf boven de $where_nl-bovengrens",
        counts_other_only=True,
    ),
)
# How the _EXCEEDED message ends: before the plan contract, magnesium already taken is not counted.
_EXCEEDED_ENDING = {False: ".", True: " minus any magnesium already taken."}
# The jurisdiction as a Dutch reader writes it (REFERENCE: US = VS).
JURISDICTION_NL = {"US": "VS", "EU": "EU"}


def counts_other_mg(data: dict[str, Any]) -> bool:
    """Whether a ruleset document counts magnesium already taken (and keeps the plan contract)."""
    version = data.get("version")
    return isinstance(version, int) and version >= vocab.PLAN_CONTRACT_SINCE_VERSION


def bilingual(data: dict[str, Any]) -> bool:
    """Whether a ruleset document carries the Dutch of every message (and its generated rules do too)."""
    version = data.get("version")
    return isinstance(version, int) and version >= vocab.BILINGUAL_SINCE_VERSION


def expand(table: Any, counts_other: bool = False, dutch: bool = False) -> list[dict[str, Any]]:
    """The rules of an upper-limit table: per row, the limit applies, and the dose exceeds it.

    From PLAN_CONTRACT_SINCE_VERSION on (`counts_other`), magnesium already taken counts too: two more
    rules per row, requested + other above the limit, and other alone above it (REFERENCE §1.5, §8).
    From BILINGUAL_SINCE_VERSION on (`dutch`), each message and description has its Dutch twin.
    """
    if not isinstance(table, list):
        return []
    rules: list[dict[str, Any]] = []
    for row in table:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        for spec in LIMIT_RULES:
            if counts_other or not spec.counts_other_only:
                rules.append(_rule(row, spec, counts_other, dutch))
    return rules


def _rule(row: dict[str, Any], spec: LimitRule, counts_other: bool, dutch: bool = False) -> dict[str, Any]:
    """One generated rule of one upper-limit row."""
    ul = row.get("ul_mg")
    where_nl = JURISDICTION_NL.get(str(row.get("jurisdiction")), row.get("jurisdiction"))
    words = {"where": row.get("jurisdiction"), "ul": ul, "ending": _EXCEEDED_ENDING[counts_other], "where_nl": where_nl}
    where: list[list[Any]] = [
        ["jurisdiction", "==", row.get("jurisdiction")],
        ["age_years", ">=", row.get("age_min_years")],
    ]
    if row.get("age_below_years") is not None:
        where.append(["age_years", "<", row["age_below_years"]])
    where += [[name, op, ul if value == "$ul" else value] for name, op, value in spec.when]
    if spec.oral_only and counts_other:
        where.append(list(_NOT_ORAL))
    then: dict[str, Any] = {"ul_mg": ul}
    if spec.severity is not None:
        then = {
            "finding": row.get("finding"),
            "severity": spec.severity,
            "message": Template(spec.message).substitute(words),
            "cap_mg": ul,
        }
        if dutch:
            then["message_nl"] = Template(spec.message_nl).substitute(words)
    extra = {"description_nl": Template(spec.description_nl).substitute(words)} if dutch else {}
    return {
        "id": row["id"] + spec.suffix,
        "description": Template(spec.description).substitute(words),
        **extra,
        "when": [{"on": "patient", "where": where}],
        "then": then,
        **{k: row[k] for k in ("sources", "confidence", "note") if k in row},
    }


def check_table(table: Any, label: str) -> Iterator[RulesetError]:
    """Every problem of an upper-limit table: keys, jurisdiction, age bands (non-empty, not overlapping), ul_mg."""
    if not isinstance(table, list):
        yield RulesetError("'upper_limits' must be a list", ruleset=label)
        return
    bands: dict[str, list[tuple[float, float, str]]] = {}
    for row in table:
        row_id = row.get("id") if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row_id, str):
            yield RulesetError("every upper_limits row needs an 'id'", ruleset=label)
            continue
        yield from _check_row(row, row_id, label, bands)


def _check_row(
    row: dict[str, Any], row_id: str, label: str, bands: dict[str, list[tuple[float, float, str]]]
) -> Iterator[RulesetError]:
    """Problems of one row; a row with a valid age band joins `bands` of its jurisdiction."""
    for key in row:
        if key not in ROW_KEYS:
            match = difflib.get_close_matches(key, list(ROW_KEYS), n=1, cutoff=0.6)
            yield RulesetError(
                f"unknown key {key!r}", ruleset=label, rule_id=row_id, suggestion=match[0] if match else None
            )
    if row.get("jurisdiction") not in JURISDICTIONS:
        yield RulesetError("jurisdiction must be 'US' or 'EU'", ruleset=label, rule_id=row_id, field="jurisdiction")
        return
    low = row.get("age_min_years")
    high = row.get("age_below_years")
    if not isinstance(low, int | float) or (high is not None and not isinstance(high, int | float)):
        yield RulesetError(
            "age_min_years/age_below_years must be numbers", ruleset=label, rule_id=row_id, field="age_min_years"
        )
        return
    upper = float("inf") if high is None else float(high)
    if upper <= low:
        yield RulesetError(
            "age band is empty (age_below_years <= age_min_years)",
            ruleset=label,
            rule_id=row_id,
            field="age_below_years",
        )
    for other_low, other_high, other_id in bands.get(row["jurisdiction"], []):
        if low < other_high and other_low < upper:
            yield RulesetError(
                f"age band overlaps {other_id} in {row['jurisdiction']}",
                ruleset=label,
                rule_id=row_id,
                field="age_min_years",
            )
    bands.setdefault(row["jurisdiction"], []).append((float(low), upper, row_id))
    if not isinstance(row.get("ul_mg"), int | float) or row["ul_mg"] <= 0:
        yield RulesetError("ul_mg must be a positive number", ruleset=label, rule_id=row_id, field="ul_mg")
