"""The FHIR rows of the QA report (QA_REPORT.md rows 1, 2, 3, 4, 6, 9, 18, 20 and "FHIR medication entries
carry no dosage"), as FHIR R4 resources as EHRs write them (every resource validated with fhir.resources
R4B), each QA input beside the false alarm it must not become. Shapes follow the QA generators
(make_fhir_variants.py, make_fhir_extra.py, make_fhir_labs.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.medicationstatement import MedicationStatement

from engine.fhir import bundle_to_record
from tests.engine.test_fhir_ehr import MGO, bundle, condition, dose, evaluate, observation, order, valid
from tests.helpers import ids

ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
MGO_TABLET_MG = 400 * 0.603  # one Magnesium Oxide 400 MG tablet, elemental [REFERENCE §2]
TABLET = {
    "doseAndRate": [
        {"doseQuantity": {"value": 1, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"}}
    ]
}


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def bid() -> dict[str, Any]:
    return {"timing": {"code": {"coding": [{"system": GTS, "code": "BID"}]}}}


def requested(result: dict[str, Any]) -> float | None:
    return result["plan"].get("requested_elemental_mg_per_day")


def notes(data: dict[str, Any]) -> str:
    return " | ".join(bundle_to_record(data).get("notes", []))


# --- row 1: a draft order coded only by RxNorm or only by ATC ------------------------------------------------

CODED_ONLY = [
    # (as the EHR codes it, found as the magnesium order?, finding it must give)
    ("ATC A12CC10 only (QA K2)", coded(ATC, "A12CC10"), True, "DOSE_UNREADABLE"),  # no strength: tablets unknown
    ("ATC A02AA04 only (magnesium hydroxide antacid)", coded(ATC, "A02AA04"), True, "DOSE_UNREADABLE"),
    ("ATC A06AD19 only (magnesium citrate laxative)", coded(ATC, "A06AD19"), True, "DOSE_UNREADABLE"),
    ("RxNorm 102221 only (US Core: Magnesium Sulfate 400 MG/ML Oral Solution)", coded(RXNORM, "102221"), True, None),
    (
        "an unknown RxNorm code with ATC A12CC10 beside it",
        {"coding": [{"system": RXNORM, "code": "311439"}, {"system": ATC, "code": "A12CC10"}]},
        True,
        "DOSE_UNREADABLE",
    ),
    ("an unknown RxNorm code with a text naming magnesium", {**coded(RXNORM, "311439"), "text": MGO}, True, None),
    # false alarms: nothing readable says magnesium
    (
        "an unknown RxNorm code alone (QA K: 311439, unchecked) is not read as magnesium",
        coded(RXNORM, "311439"),
        False,
        None,
    ),
    ("ATC A02BC01 (omeprazole) is not a magnesium order", coded(ATC, "A02BC01"), False, None),
]


@pytest.mark.parametrize("written, concept, found, expected", CODED_ONLY, ids=[c[0] for c in CODED_ONLY])
def test_a_draft_coded_only_by_rxnorm_or_atc_is_the_magnesium_order(evaluator, written, concept, found, expected):
    data = bundle(order(concept, {**bid(), **TABLET}))
    result = evaluate(evaluator, data)
    assert result["facts"]["patient"]["supplement_requested"] is found
    if expected:
        assert expected in ids(result)
    if not found:
        assert "supplement" not in bundle_to_record(data)
        assert not ids(result) & {"DOSE_UNREADABLE", "DOSE_ABOVE_UL_EU", "ROUTE_NOT_ORAL"}


def test_rxnorm_102221_names_the_drug_so_the_salt_is_read():
    record = bundle_to_record(bundle(order(coded(RXNORM, "102221"), {**bid(), **dose(5, "mL")})))
    assert record["supplement"]["form"] == "magnesium sulfate (RxNorm 102221)"


# --- rows 2 and 3: routes coded in HL7 v3 RouteOfAdministration; Medication.form ---------------------------

ROUTES = [
    ("v3 IV, no display (QA G2)", coded(V3_ROUTE, "IV"), "not_oral"),
    ("v3 IVINJ", coded(V3_ROUTE, "IVINJ"), "not_oral"),
    ("v3 IM", coded(V3_ROUTE, "IM"), "not_oral"),
    ("v3 SQ", coded(V3_ROUTE, "SQ"), "not_oral"),
    ("v3 PR (rectal)", coded(V3_ROUTE, "PR"), "not_oral"),
    ("a code we do not know, no display: the safe reading", coded("urn:oid:1.2.3.4", "77"), "not_oral"),
    # false alarms: oral routes stay oral
    ("v3 PO (Swallow, oral)", coded(V3_ROUTE, "PO"), "oral"),
    ("v3 CHEW (Chew, oral)", coded(V3_ROUTE, "CHEW"), "oral"),
    (
        "a local code first, then SNOMED CT oral",
        {"coding": [{"system": "urn:oid:1.2.3", "code": "X"}, {"system": SNOMED, "code": "26643006"}]},
        "oral",
    ),
]


@pytest.mark.parametrize("written, route, kind", ROUTES, ids=[r[0] for r in ROUTES])
def test_routes_coded_in_hl7_v3_are_read(evaluator, written, route, kind):
    result = evaluate(evaluator, bundle(order("Magnesium sulfate 50 %", {**bid(), "route": route, **dose(2, "g")})))
    assert result["facts"]["patient"]["supplement_route"] == kind
    assert ("ROUTE_NOT_ORAL" in ids(result)) is (kind == "not_oral")


def medication(form: dict[str, Any]) -> dict[str, Any]:
    from fhir.resources.R4B.medication import Medication

    resource = {
        "resourceType": "Medication",
        "id": "med-mg",
        "code": {"text": "Magnesium sulfate 50 %"},
        "form": form,
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "Magnesium sulfate heptahydrate"},
                "strength": {
                    "numerator": {"value": 500, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
                    "denominator": {"value": 1, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"},
                },
            }
        ],
    }
    Medication.model_validate(resource)
    return resource


FORMS = [
    (
        "SNOMED CT 385219001 'Solution for injection' (QA Y)",
        {"coding": [{"system": SNOMED, "code": "385219001", "display": "Solution for injection"}]},
        "not_oral",
    ),
    ("SNOMED CT 385219001, code only", coded(SNOMED, "385219001"), "not_oral"),
    ("form text 'Solution for infusion'", {"text": "Solution for infusion"}, "not_oral"),
    # false alarm: an oral form on the Medication keeps the order oral
    ("form text 'Oral solution'", {"text": "Oral solution"}, "oral"),
]


@pytest.mark.parametrize("written, form, kind", FORMS, ids=[f[0] for f in FORMS])
def test_a_referenced_medications_form_gives_the_route(evaluator, written, form, kind):
    med = medication(form)
    request = order("unused", {"timing": {"code": {"coding": [{"system": GTS, "code": "QD"}]}}, **dose(4, "mL")})
    request.pop("medicationCodeableConcept")
    request["medicationReference"] = {"reference": "Medication/med-mg"}
    valid(request)
    result = evaluate(evaluator, bundle(med, request))
    assert result["facts"]["patient"]["supplement_route"] == kind
    assert ("ROUTE_NOT_ORAL" in ids(result)) is (kind == "not_oral")


# --- rows 4 and 18: the frequency in the text; every timing.code coding; maxDosePerPeriod "day" --------------

TEXT_FREQUENCY = [
    # (dosage line, elemental mg a day or None for unreadable)
    ("'1 tablet three times daily', no timing (QA J2)", {"text": "1 tablet three times daily", **TABLET}, 3),
    ("'2dd1', no timing", {"text": "2dd1", **TABLET}, 2),
    ("'1-0-1', no timing", {"text": "1-0-1", **TABLET}, 2),
    ("patientInstruction 'bid', no timing", {"patientInstruction": "bid", **TABLET}, 2),
    ("timing.code.text 'twice daily' (QA R)", {"timing": {"code": {"text": "twice daily"}}, **TABLET}, 2),
    ("timing.code.text 'BID' only (QA X2)", {"timing": {"code": {"text": "BID"}}, **TABLET}, 2),
    (
        "a local code first, then GTS BID (QA X1)",
        {
            "timing": {
                "code": {
                    "coding": [
                        {"system": "urn:oid:1.2.3.4", "code": "2XD", "display": "2x daily"},
                        {"system": GTS, "code": "BID"},
                    ]
                }
            },
            **TABLET,
        },
        2,
    ),
    (
        "maxDosePerPeriod 3 tablets per {unit: 'day'}, no code (QA T)",
        {
            "asNeededBoolean": True,
            **TABLET,
            "maxDosePerPeriod": {
                "numerator": {"value": 3, "unit": "tablet"},
                "denominator": {"value": 1, "unit": "day"},
            },
        },
        3,
    ),
    # the safe reading: no timing and no frequency readable is not "once"
    ("no timing, text without a frequency", {"text": "take with food", **TABLET}, None),
    ("no timing, no text", {**TABLET}, None),
    (
        "only a local timing code nobody reads",
        {"timing": {"code": {"coding": [{"system": "urn:oid:1.2.3.4", "code": "2XD"}]}}, **TABLET},
        None,
    ),
    # false alarms: once a day written is once a day (241 mg: under the EU upper limit of 250)
    ("'1 tablet once daily', no timing", {"text": "1 tablet once daily", **TABLET}, 1),
    (
        "maxDosePerPeriod 1 tablet per {unit: 'dag'}",
        {
            "asNeededBoolean": True,
            **TABLET,
            "maxDosePerPeriod": {
                "numerator": {"value": 1, "unit": "tablet"},
                "denominator": {"value": 1, "unit": "dag"},
            },
        },
        1,
    ),
]


@pytest.mark.parametrize("written, line, tablets", TEXT_FREQUENCY, ids=[t[0] for t in TEXT_FREQUENCY])
def test_the_frequency_is_read_from_text_and_every_coding(evaluator, written, line, tablets):
    data = bundle(order(MGO, line))
    result = evaluate(evaluator, data)
    if tablets is None:
        assert requested(result) is None
        assert "DOSE_UNREADABLE" in ids(result)
        return
    assert requested(result) == pytest.approx(MGO_TABLET_MG * tablets, abs=0.1)
    assert "DOSE_UNREADABLE" not in ids(result)
    assert ("DOSE_ABOVE_UL_EU" in ids(result)) is (tablets > 1)


def test_a_frequency_read_from_text_is_noted():
    assert "frequency read from the text" in notes(bundle(order(MGO, {"text": "1 tablet three times daily", **TABLET})))
    assert "frequency read from the text" not in notes(bundle(order(MGO, {**bid(), **TABLET})))


# --- row 9: dosage lines with different sequence numbers -----------------------------------------------------


def when(code: str, text: str, sequence: int, **bounds: Any) -> dict[str, Any]:
    return {"sequence": sequence, "text": text, "timing": {"repeat": {"when": [code], **bounds}}, **TABLET}


def test_differently_sequenced_lines_without_bounds_add_up(evaluator):
    data = bundle(order(MGO, when("MORN", "1 tab morning", 1), when("EVE", "1 tab evening", 2)))  # QA C3
    result = evaluate(evaluator, data)
    assert requested(result) == pytest.approx(2 * MGO_TABLET_MG, abs=0.1)
    assert "DOSE_ABOVE_UL_EU" in ids(result)
    assert "read as taken together" in notes(data)


def test_phases_separated_by_bounds_count_the_largest(evaluator):
    week = {"boundsDuration": {"value": 7, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}}
    data = bundle(order(MGO, when("MORN", "first week", 1, **week), when("EVE", "after", 2)))
    result = evaluate(evaluator, data)
    assert requested(result) == pytest.approx(MGO_TABLET_MG, abs=0.1)  # one tablet a day in either phase
    assert "DOSE_ABOVE_UL_EU" not in ids(result)
    assert "read as taken together" not in notes(data)


# --- row 6: a seizure disorder is chronic ----------------------------------------------------------------------

SEIZURES = [
    (
        "Seizure disorder 128613002, onset 2022, record 2024 (QA X4)",
        "Seizure disorder",
        "2022-05-01",
        "128613002",
        True,
    ),
    ("Seizure disorder 128613002, onset 1978 (QA C2)", "Seizure disorder", "1978-05-01", "128613002", True),
    ("Epilepsy 84757009, onset 1990", "Epilepsy", "1990-05-01", "84757009", True),
    # false alarm: a single febrile seizure decades ago is an old acute episode
    ("Febrile seizure, onset 1978", "Febrile seizure", "1978-05-01", None, False),
]


@pytest.mark.parametrize("written, text, onset, snomed, current", SEIZURES, ids=[s[0] for s in SEIZURES])
def test_a_seizure_disorder_stays_current(evaluator, written, text, onset, snomed, current):
    data = bundle(condition(text, onset, snomed=snomed), order(MGO, {**bid(), **TABLET}))
    record = bundle_to_record(data)
    assert any(text in str(c) for c in record["conditions"]) is current
    assert any(h.get("name") == text for h in record.get("history", [])) is not current
    assert ("RED_FLAG_SYMPTOMS" in ids(evaluate(evaluator, data))) is current


# --- row 20: a computed eGFR shows its creatinine's status and date -------------------------------------------


def egfr_evidence(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every evidence item on the eGFR, also those under a derived fact's 'because'."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "egfr_source" in value:
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk([f.get("evidence") for f in result["findings"]])
    return found


def test_a_computed_egfr_shows_the_creatinine_it_came_from(evaluator):
    creatinine = observation("2160-0", 2.4, "mg/dL", when="2024-04-02", status="preliminary")
    result = evaluate(evaluator, bundle(order(MGO, {**bid(), **TABLET}), labs=[creatinine]))
    items = egfr_evidence(result)
    assert items and all(e["egfr_source"] == "ckd_epi_2021" for e in items)
    shown = items[0]["computed_from_creatinine"]
    assert shown["status"] == "preliminary" and shown["date"].startswith("2024-04-02")
    assert shown["code"] == "2160-0"


def test_a_lab_egfr_is_not_said_to_come_from_creatinine(evaluator):  # the false alarm
    labs = [observation("98979-8", 25, "mL/min/{1.73_m2}"), observation("2160-0", 2.4, "mg/dL")]
    items = egfr_evidence(evaluate(evaluator, bundle(order(MGO, {**bid(), **TABLET}), labs=labs)))
    assert items and all(e["egfr_source"] == "lab" and "computed_from_creatinine" not in e for e in items)


# --- magnesium already taken from FHIR: the dosage goes with the name -----------------------------------------


def statement(text: str, dosage: list[dict[str, Any]]) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationStatement",
        "id": f"ms-{abs(hash(text + str(dosage)))}",
        "status": "active",
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-05-01",
        "dosage": dosage,
    }
    MedicationStatement.model_validate(resource)
    return resource


TAKEN = [
    ("dosage text '1 tablet twice daily'", [{"text": "1 tablet twice daily"}], 2 * MGO_TABLET_MG),
    ("structured BID, 1 tablet, no text", [{**bid(), **TABLET}], 2 * MGO_TABLET_MG),
    (
        "structured 3 a day, 1 tablet",
        [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}, **TABLET}],
        3 * MGO_TABLET_MG,
    ),
    # false alarm of the other side: nothing about the dosage stays "once a day, assumed"
    ("no dosage at all", [], MGO_TABLET_MG),
]


@pytest.mark.parametrize("written, dosage, mg", TAKEN, ids=[t[0] for t in TAKEN])
def test_magnesium_taken_from_fhir_is_read_with_its_dosage(evaluator, written, dosage, mg):
    result = evaluate(evaluator, bundle(statement(MGO, dosage)))
    assert result["facts"]["patient"]["other_mg_elemental_mg_per_day"] == pytest.approx(mg, abs=0.1)


def test_a_non_magnesium_medication_keeps_its_name():
    record = bundle_to_record(
        bundle(statement("Omeprazole 20 MG Delayed Release Oral Capsule", [{"text": "1 capsule daily"}]))
    )
    assert record["medications"] == [{"name": "Omeprazole 20 MG Delayed Release Oral Capsule"}]
