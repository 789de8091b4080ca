"""FHIR R4 intake on the real Synthea bundles in ../shared/external/fhir, as they are, and malformed ones."""

import copy
import json
from pathlib import Path

import pytest

from engine.errors import RecordError
from engine.fhir import bundle_to_record
from tests.conftest import ids
from tests.test_batch import lines, mgreview

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external" / "fhir"
pytestmark = pytest.mark.skipif(not EXTERNAL.exists(), reason="../shared/external/fhir is not beside the checkout")


def bundle(name):
    return json.loads(next(EXTERNAL.glob(f"{name}*.json")).read_text("utf-8"))


@pytest.fixture(scope="module")
def evaluated(evaluator):
    return {
        p.name.split("_")[0].split("-")[0]: evaluator.evaluate(bundle_to_record(json.loads(p.read_text("utf-8"))))
        for p in sorted(EXTERNAL.glob("*.json"))
    }


@pytest.mark.parametrize(
    "patient, expected",
    [
        ("Martina", {"RENAL_SEVERE", "LOOP_THIAZIDE_DIURETIC", "OTHER_CHELATION_SEPARATION"}),  # GFR 26.7, Lasix, iron
        ("Isaiah", {"RENAL_MODERATE", "LOOP_THIAZIDE_DIURETIC"}),  # eGFR 41.59, hydrochlorothiazide
        ("Trey", {"DIGOXIN_MG", "LEVOTHYROXINE_SEPARATION", "LOOP_THIAZIDE_DIURETIC"}),
        ("Gayla", {"BISPHOSPHONATE_SEPARATION", "LOOP_THIAZIDE_DIURETIC"}),  # alendronic acid
        ("1ae5f864", {"RENAL_SEVERE"}),  # eGFR 18.64
        ("dab4861f", {"LOOP_THIAZIDE_DIURETIC"}),  # thiazide inside a combination product
    ],
)
def test_synthea_bundles_give_the_expected_findings(evaluated, patient, expected):
    result = evaluated[patient]
    assert result["status"] == "ok"
    assert expected <= ids(result)


def test_labs_are_the_newest_final_results(evaluated):
    martina = evaluated["Martina"]["facts"]["patient"]
    assert martina["egfr_source"] == "lab" and martina["egfr_ml_min_1_73m2"] == pytest.approx(26.699, abs=1e-3)
    dab = evaluated["dab4861f"]["facts"]["patient"]  # creatinine only (1.61 mg/dL, 2020-01-20): CKD-EPI 2021
    assert dab["egfr_source"] == "ckd_epi_2021" and dab["creatinine_mg_dl"] == pytest.approx(1.61)


def test_stopped_medication_and_deceased_child(evaluated):
    leatrice = evaluated["Leatrice"]  # died at 6; doxycycline stopped
    assert leatrice["facts"]["patient"]["age_years"] == pytest.approx(6.41, abs=0.01)
    assert "TETRACYCLINE_SEPARATION" not in ids(leatrice) and "PEDIATRIC" in ids(leatrice)


def test_medication_reference_resolves_to_the_medication_entry():
    record = bundle_to_record(bundle("dab4861f"))
    data = bundle("dab4861f")
    referenced = [
        e["resource"]
        for e in data["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
        and "medicationReference" in e["resource"]
        and e["resource"]["status"] == "active"
    ]
    assert all(isinstance(m, dict) and m.get("name") for m in record["medications"])
    assert len(record["medications"]) >= 1 + bool(referenced)


def test_draft_magnesium_order_becomes_the_supplement():
    data = bundle("Gayla")
    patient_ref = next(e["fullUrl"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient")
    data["entry"].append(
        {
            "fullUrl": "urn:uuid:draft-mg",
            "resource": {
                "resourceType": "MedicationRequest",
                "id": "draft-mg",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": patient_ref},
                "medicationCodeableConcept": {"text": "Magnesium Oxide 400 MG Oral Tablet"},
                "dosageInstruction": [
                    {
                        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [
                            {
                                "doseQuantity": {
                                    "value": 400,
                                    "unit": "mg",
                                    "code": "mg",
                                    "system": "http://unitsofmeasure.org",
                                }
                            }
                        ],
                    }
                ],
            },
        }
    )
    record = bundle_to_record(data)
    assert record["supplement"] == {
        "form": "Magnesium Oxide 400 MG Oral Tablet",
        "dose_mg": 800.0,
        "dose_basis": "salt",
    }


def test_invalid_resource_is_rejected_with_entry_and_field():
    data = bundle("Martina")
    index = next(i for i, e in enumerate(data["entry"]) if e["resource"]["resourceType"] == "Observation")
    data["entry"][index]["resource"]["valueQuantity"]["value"] = "high"
    with pytest.raises(RecordError) as e:
        bundle_to_record(data)
    field = e.value.errors[0].field
    assert field.startswith(f"entry[{index}] Observation/") and "valueQuantity.value" in field


def test_bundle_without_patient_is_rejected():
    data = copy.deepcopy(bundle("Trey"))
    data["entry"] = [e for e in data["entry"] if e["resource"]["resourceType"] != "Patient"]
    with pytest.raises(RecordError, match="expected one Patient, found 0"):
        bundle_to_record(data)


def test_ndjson_of_bundles_through_the_cli(tmp_path):
    src = tmp_path / "bundles.ndjson"
    good = json.dumps(bundle("Trey"))
    broken = bundle("Gayla")
    broken["entry"][0]["resource"]["birthDate"] = "not a date"
    src.write_text(good + "\n" + json.dumps(broken) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    proc = mgreview("evaluate", str(src), "-o", str(out))
    first, second = lines(out)
    assert first["status"] == "ok" and "DIGOXIN_MG" in ids(first)
    assert second["status"] == "rejected" and "birthDate" in second["errors"][0]["field"]
    assert proc.returncode == 1
