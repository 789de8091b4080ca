"""The closed vocabulary a ruleset may use: fact types and fields, operators, effects.

Rules are data; this module is the code that says what the data may name. The checker
(`engine.ruleset_check`), the planner and the rule editor build their choices from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal["number", "string", "boolean", "string_list"]


@dataclass(frozen=True)
class FactField:
    """One field a rule may test: its type, unit and meaning."""

    name: str
    type: FieldType
    description: str
    unit: str | None = None
    choices: tuple[str, ...] = ()


def _fields(*fields: FactField) -> dict[str, FactField]:
    return {f.name: f for f in fields}


# FHIR ObservationStatus values a lab result may be read with (cancelled and entered-in-error never are)
LAB_STATUSES: tuple[str, ...] = ("registered", "preliminary", "final", "amended", "corrected", "unknown")


def _lab_context_fields() -> tuple[FactField, ...]:
    """How each lab value was reported (present only when the record or the FHIR Observation says)."""
    out: list[FactField] = []
    for prefix, lab in (("egfr", "eGFR"), ("serum_mg", "serum magnesium"), ("creatinine", "serum creatinine")):
        out += [
            FactField(
                f"{prefix}_status",
                "string",
                f"status of the {lab} result used (FHIR ObservationStatus)",
                choices=LAB_STATUSES,
            ),
            FactField(f"{prefix}_date", "string", f"date of the {lab} result used, as reported"),
            FactField(f"{prefix}_code", "string", f"LOINC code of the {lab} result used"),
            FactField(
                f"{prefix}_bound",
                "string",
                f"the {lab} was reported as a bound (e.g. '>90'), read as its worst case",
                choices=("lower", "upper"),
            ),
            FactField(f"{prefix}_as_reported", "string", f"the {lab} as reported when it was a bound"),
        ]
    out.append(
        FactField(
            "egfr_creatinine_disagreement",
            "string",
            "the lab eGFR and the CKD-EPI 2021 eGFR of a same-day creatinine disagree grossly (both shown)",
        )
    )
    return tuple(out)


# Fact types asserted per evaluation. A rule pattern names one of these with "on".
FACT_TYPES: dict[str, dict[str, FactField]] = {
    "patient": _fields(
        FactField("age_years", "number", "age in years (fractional for infants)", "years"),
        FactField("sex", "string", "sex at birth", choices=("female", "male", "unknown")),
        FactField("pregnant", "boolean", "pregnant now (false when not stated)"),
        FactField("lactating", "boolean", "breastfeeding now (false when not stated)"),
        FactField("jurisdiction", "string", "which dose limits apply", choices=("US", "EU")),
        FactField("renal_data_known", "boolean", "an eGFR is known (lab, or CKD-EPI 2021 from creatinine)"),
        FactField("egfr_ml_min_1_73m2", "number", "eGFR, unrounded; absent when unknown", "mL/min/1.73m2"),
        FactField("egfr_source", "string", "where the eGFR came from", choices=("lab", "ckd_epi_2021", "none")),
        FactField(
            "kdigo_category",
            "string",
            "KDIGO 2012 GFR category",
            choices=("G1", "G2", "G3a", "G3b", "G4", "G5", "unknown"),
        ),
        FactField("serum_mg_known", "boolean", "a usable serum magnesium value is known"),
        FactField("serum_mg_mmol_l", "number", "serum magnesium normalised to mmol/L", "mmol/L"),
        FactField("serum_mg_lab_upper_limit_known", "boolean", "the lab supplied its own upper limit"),
        FactField("serum_mg_above_lab_upper_limit", "boolean", "serum magnesium is above the lab's own upper limit"),
        FactField("serum_mg_unit_unrecognized", "boolean", "the magnesium lab unit was not recognised"),
        FactField("creatinine_unit_unrecognized", "boolean", "the creatinine lab unit was not recognised"),
        FactField("supplement_requested", "boolean", "a supplement (form or dose) was asked for"),
        FactField("supplement_form", "string", "canonical supplement form, 'unknown' or 'none'"),
        FactField("dose_basis", "string", "how the dose was stated", choices=("elemental", "salt", "none")),
        FactField(
            "supplement_dose_elemental_mg",
            "number",
            "requested dose as elemental Mg; absent if unknown",
            "mg",
        ),
        FactField("supplement_form_text", "string", "the supplement form as written"),
        FactField(
            "supplement_route",
            "string",
            "route of the requested magnesium: oral, another route (IV, IM, rectal, topical), none",
            choices=("oral", "not_oral", "none"),
        ),
        FactField("supplement_route_text", "string", "the route as written or coded"),
        FactField(
            "supplement_dose_unreadable",
            "boolean",
            "an amount was given but cannot be read as mg of magnesium (tablets without strength, unknown unit)",
        ),
        FactField("supplement_dose_text", "string", "the requested amount as written, when it could not be read"),
        FactField("supplement_dose_mg_as_entered", "number", "the dose as entered (elemental or salt)", "mg"),
        FactField("elemental_fraction", "number", "elemental Mg fraction used to convert a salt weight"),
        FactField("serum_mg_lab_upper_limit_mmol_l", "number", "the lab's own upper limit in mmol/L", "mmol/L"),
        FactField("creatinine_mg_dl", "number", "serum creatinine normalised to mg/dL", "mg/dL"),
        FactField("weight_kg", "number", "body weight", "kg"),
        *_lab_context_fields(),
        FactField(
            "other_mg_elemental_mg_per_day",
            "number",
            "elemental Mg per day already taken from other products, read from the medication list; absent when none",
            "mg",
        ),
        FactField(
            "other_mg_amount_unknown",
            "boolean",
            "some magnesium product is listed whose amount cannot be known from what was written",
        ),
        FactField("other_mg_unknown_text", "string", "the magnesium products whose amount is unknown, as written"),
        FactField(
            "other_mg_dose_unreadable",
            "boolean",
            "a magnesium product's amount is written (tablets, ml, mg) but cannot be read as mg of magnesium",
        ),
        FactField("other_mg_unreadable_text", "string", "the magnesium products whose written amount is unreadable"),
        FactField(
            "total_supplemental_mg_per_day",
            "number",
            "requested elemental Mg plus magnesium already taken; absent when neither is known",
            "mg",
        ),
    ),
    "medication": _fields(
        FactField("ingredient", "string", "canonical ingredient name from the drug vocabulary"),
        FactField("classes", "string_list", "drug classes of the ingredient"),
        FactField("product", "string", "combination product the ingredient came from, or 'none'"),
        FactField("text", "string", "the medication as written"),
    ),
    "concept": _fields(
        FactField("concept", "string", "condition or symptom concept id from the concept vocabulary"),
        FactField("kind", "string", "where it was listed", choices=("condition", "symptom")),
        FactField("text", "string", "the condition or symptom as written"),
    ),
    "derived": _fields(
        FactField("name", "string", "name of a fact derived by another rule"),
    ),
}

# Operators of a condition triple [field, op, value].
OPERATORS: dict[str, str] = {
    "==": "equals",
    "!=": "differs from",
    "<": "is below",
    "<=": "is at most",
    ">": "is above",
    ">=": "is at least",
    "in": "is one of",
    "contains": "list contains",
    "contains_any": "list contains one of",
}
NUMERIC_OPERATORS = frozenset({"<", "<=", ">", ">="})
LIST_OPERATORS = frozenset({"contains", "contains_any"})

SEVERITIES: tuple[str, ...] = ("contraindicated", "major", "moderate", "minor", "info")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}  # 0 is most severe

# Effects a rule's "then" may hold, with the type of their value.
EffectType = Literal[
    "finding_id", "severity", "text", "fact_name", "number", "integer", "boolean", "text_list", "hours", "form"
]


@dataclass(frozen=True)
class Effect:
    """One effect a rule may have: its value type, bounds and meaning.

    The checker tests a rule's `then` against it, the planner reads which effects shape the plan, and the
    rule editor takes its field kinds and bounds from it.
    """

    name: str
    type: EffectType
    description: str
    minimum: float | None = None
    maximum: float | None = None
    shapes_plan: bool = False  # a rule with this effect set changes the suggested plan


def _effects(*effects: Effect) -> dict[str, Effect]:
    return {e.name: e for e in effects}


EFFECTS: dict[str, Effect] = _effects(
    Effect("finding", "finding_id", "catalogue finding id to report"),
    Effect("severity", "severity", "severity of the finding"),
    Effect("message", "text", "plain-language message; {field} placeholders take matched fact values"),
    Effect("message_nl", "text", "the message in Dutch, with the same {field} placeholders"),
    Effect("derive", "fact_name", "name of a fact to derive (another rule must consume it)"),
    Effect(
        "cap_mg",
        "number",
        "cap on elemental Mg per day for the plan (0 = no supplement without a physician)",
        minimum=0,
        shapes_plan=True,
    ),
    Effect("requires_physician", "boolean", "a physician must decide", shapes_plan=True),
    Effect("monitoring", "text_list", "monitoring advice lines for the plan", shapes_plan=True),
    Effect("monitoring_nl", "text_list", "the monitoring lines in Dutch, one for each English line"),
    Effect(
        "separation",
        "hours",
        "{before_h, after_h}: window between the matched medication and Mg",
        minimum=0,
        shapes_plan=True,
    ),
    Effect(
        "doses_per_day_min",
        "integer",
        "minimum number of divided doses per day",
        minimum=1,
        maximum=8,
        shapes_plan=True,
    ),
    Effect("suggest_form", "form", "form to suggest instead of the requested one", shapes_plan=True),
    Effect("urgent", "boolean", "seek urgent care; no self-directed plan", shapes_plan=True),
    Effect(
        "monitoring_on_magnesium",
        "text_list",
        "monitoring advice lines that apply only when the plan proposes some magnesium",
    ),
    Effect(
        "monitoring_on_magnesium_nl",
        "text_list",
        "the monitoring-on-magnesium lines in Dutch, one for each English line",
    ),
    Effect(
        "only_when_supplemented",
        "boolean",
        "true: the finding is advice for taking magnesium, shown only when magnesium is proposed",
    ),
)
# The effect of an upper-limit rule generated from the ruleset's upper_limits table; never written in a rule.
UPPER_LIMIT_EFFECT = Effect(
    "ul_mg", "number", "tolerable upper limit of supplemental elemental Mg per day", minimum=0, shapes_plan=True
)
# Effects that change the suggested plan when set
PLAN_EFFECTS: tuple[str, ...] = tuple(e.name for e in (*EFFECTS.values(), UPPER_LIMIT_EFFECT) if e.shapes_plan)
# Always propose at least two divided doses: the studies behind the upper limit used divided doses [S7].
DIVIDED_DOSES_PER_DAY = 2
# From this version on the plan contract of REFERENCE §8 holds and magnesium already taken is counted against
# the upper limit (REFERENCE §1.5). Published versions before it never change. Plan contract: a rule with
# cap_mg 0 means a physician DECIDES the dose (the plan proposes none and states the ceiling separately); a
# rule with requires_physician and no cap 0 means a physician APPROVES the plan (the cap stands).
PLAN_CONTRACT_SINCE_VERSION = 2
# Plans carry the daily schedule (engine/schedule.py) from this version on; v1's published output stays as it was.
DAILY_SCHEDULE_SINCE_VERSION = 2
# From this version on every message, monitoring line, title and plan text has its Dutch twin (`message_nl`,
# `monitoring_nl`, `title_nl`, texts {en, nl}) and sources are full citations; results carry the Dutch beside
# the English. Published versions before it never change.
BILINGUAL_SINCE_VERSION = 3
PHYSICIAN_DECIDES_PHRASES: tuple[str, ...] = (
    "physician decides",
    "physician only",
    "physician or hospital protocol decides",
    "arts beslist",
    "beslist de arts",
    "beslist een arts",
    "alleen door een arts",
)


def physician_role(then: dict[str, object]) -> str | None:
    """'decides' (cap 0: no amount without a physician), 'approves' (a physician signs the plan), or None."""
    if then.get("cap_mg") == 0:
        return "decides"
    return "approves" if then.get("requires_physician") else None


# The finding catalogue of REFERENCE §8: the product's stable vocabulary.
FINDING_IDS: tuple[str, ...] = (
    "DOSE_ABOVE_UL_US",
    "DOSE_ABOVE_UL_EU",
    "INFANT_NO_SUPPLEMENT",
    "EU_NO_UL_UNDER_4",
    "PEDIATRIC",
    "DOSE_BASIS_SALT",
    "FORM_UNKNOWN",
    "FORM_LOW_SOLUBILITY",
    "CUMULATIVE_MG_SOURCES",
    "SPLIT_DOSE",
    "RENAL_SEVERE",
    "RENAL_MODERATE",
    "RENAL_DATA_MISSING",
    "MG_LAB_MISSING",
    "HYPOMAGNESEMIA",
    "HYPOMAGNESEMIA_SEVERE",
    "MG_ABOVE_RANGE",
    "HYPERMAGNESEMIA_TOXIC",
    "UNIT_UNRECOGNIZED",
    "TETRACYCLINE_SEPARATION",
    "FLUOROQUINOLONE_SEPARATION",
    "LEVOTHYROXINE_SEPARATION",
    "BISPHOSPHONATE_SEPARATION",
    "INSTI_SEPARATION",
    "RALTEGRAVIR_AVOID",
    "RILPIVIRINE_SEPARATION",
    "GABAPENTIN_SEPARATION",
    "ELTROMBOPAG_SEPARATION",
    "PENICILLAMINE_SEPARATION",
    "MYCOPHENOLATE_SEPARATION",
    "OTHER_CHELATION_SEPARATION",
    "DIGOXIN_MG",
    "PPI_LONG_TERM",
    "LOOP_THIAZIDE_DIURETIC",
    "K_SPARING_DIURETIC",
    "MG_WASTING_DRUG",
    "ALCOHOL_USE_DISORDER",
    "CARDIAC_CONDUCTION_DISORDER",
    "MYASTHENIA_GRAVIS",
    "GI_OBSTRUCTION",
    "GLYCEROPHOSPHATE_HYPERPHOSPHATAEMIA",
    "RED_FLAG_SYMPTOMS",
    "HYPERMAG_SYMPTOMS",
    "GI_INTOLERANCE",
    "PREGNANCY",
    "LACTATION",
    "THREONATE_PREG_LACT",
    "UNRECOGNIZED_MEDICATION",
    "FOLLOW_UP",
    "DOSE_UNREADABLE",
    "ROUTE_NOT_ORAL",
)
# Catalogue ids added after the first ruleset version: a ruleset must report them from this version on
# (a published version never changes, so an older one cannot be required to know a later id).
FINDING_SINCE_VERSION: dict[str, int] = {"DOSE_UNREADABLE": 2, "ROUTE_NOT_ORAL": 2}
# The findings of a dose above a jurisdiction's tolerable upper limit (one per upper_limits jurisdiction)
UPPER_LIMIT_FINDINGS: frozenset[str] = frozenset({"DOSE_ABOVE_UL_US", "DOSE_ABOVE_UL_EU"})


def is_upper_limit_finding(finding_id: str) -> bool:
    """Whether a finding reports a dose above a tolerable upper limit."""
    return finding_id in UPPER_LIMIT_FINDINGS


# durable_rules hangs with 512 or more sibling conditions under one parent: bound the values of one
# `in` / `contains_any` condition well below that (map names to classes instead of listing them).
MAX_VALUES_PER_CONDITION = 256

# durable_rules raises error 303 when more than 64 rules match one fact at once.
DURABLE_MAX_MATCHES_PER_FACT = 64

# Class given to a medication the drug vocabulary cannot resolve, so a rule can report it.
UNRECOGNIZED_CLASS = "unrecognized"


def drug_classes(drugs: dict[str, dict[str, Any]], atc_classes: dict[str, list[str]]) -> set[str]:
    """Every drug class a ruleset's drug vocabulary and ATC prefixes use, plus the unrecognised class."""
    out = {UNRECOGNIZED_CLASS}
    for drug in drugs.values():
        out.update(drug.get("classes", []))
    for classes in atc_classes.values():
        out.update(classes)
    return out
