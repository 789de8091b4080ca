"""FHIR R4 intake on the real Synthea bundles in ../shared/external/fhir, as they are, and malformed ones."""

import copy
import json

import pytest

from engine.errors import RecordError
from engine.fhir import bundle_to_record
from tests.helpers import RULESETS, SYNTHEA, ids, lines, mgreview

EXTERNAL = SYNTHEA
pytestmark = pytest.mark.skipif(not EXTERNAL.exists(), reason="../shared/external/fhir is not beside the checkout")


def bundle(name):
    return json.loads(next(EXTERNAL.glob(f"{name}*.json")).read_text("utf-8"))


def through_fhir(evaluator, data, **options):
    """A Bundle evaluated as the batch does: mapped, then evaluated; a mapping reject is a rejected result."""
    try:
        return evaluator.evaluate(bundle_to_record(data, **options)).to_dict()
    except RecordError as e:
        return evaluator.rejected(e.record_id, [err.to_dict() for err in e.errors]).to_dict()


@pytest.fixture(scope="module")
def evaluated(evaluator):
    return {
        p.name.split("_")[0].split("-")[0]: through_fhir(evaluator, json.loads(p.read_text("utf-8")))
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


def test_deceased_patient_is_rejected_naming_patient_deceased(evaluated):
    # Was: a silent plan for a child who died in 1971 (unsafe). Now a reject that says why.
    for name in ("Leatrice", "Parker"):  # both carry Patient.deceasedDateTime
        result = evaluated[name]
        assert result["status"] == "rejected"
        assert [e["field"] for e in result["errors"]] == ["Patient.deceasedDateTime"]
        assert "deceased" in result["errors"][0]["reason"]


def test_stopped_medication_is_not_read(evaluator):
    data = bundle("Leatrice")  # doxycycline stopped; the same child as if alive, at her newest record
    patient = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient")
    del patient["deceasedDateTime"]
    result = through_fhir(evaluator, data)
    assert result["facts"]["patient"]["age_years"] == pytest.approx(6.44, abs=0.01)  # newest record 1971-06
    assert "TETRACYCLINE_SEPARATION" not in ids(result) and "PEDIATRIC" in ids(result)


def test_medication_reference_resolves_to_the_medication_entry():
    data = bundle("dab4861f")  # its MedicationRequests with a medicationReference are all stopped
    names = lambda record: [m.get("name") for m in record["medications"]]  # noqa: E731
    assert "2 ML Ondansetron 2 MG/ML Injection" not in names(bundle_to_record(data))
    request = next(e["resource"] for e in data["entry"] if "medicationReference" in e["resource"])
    request["status"] = "active"
    assert "2 ML Ondansetron 2 MG/ML Injection" in names(bundle_to_record(data))


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


# --- a Bundle per catalogue area: every golden case, written as FHIR, must give the same findings ------------

AS_OF = "2024-06-01"


def record_to_bundle(record):
    """A FHIR R4 Bundle carrying an intake record (test helper: the inverse of engine.fhir's mapping)."""
    from datetime import date, timedelta

    pid = record["id"]
    born = date.fromisoformat(AS_OF) - timedelta(days=round(record["age_years"] * 365.2425))
    patient = {"resourceType": "Patient", "id": pid, "birthDate": born.isoformat()}
    if record.get("sex"):
        patient["gender"] = record["sex"]
    resources = [patient]

    def observation(code, value, unit, text=None):
        obs = {
            "resourceType": "Observation",
            "id": f"obs-{len(resources)}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": AS_OF,
        }
        if text is not None:
            obs["valueCodeableConcept"] = {"text": text}
        else:
            obs["valueQuantity"] = {
                "value": value,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": {"mEq/L": "meq/L"}.get(unit, unit),
            }
        resources.append(obs)

    if "egfr_ml_min_1_73m2" in record:
        observation("98979-8", record["egfr_ml_min_1_73m2"], "mL/min/{1.73_m2}")
    if "serum_magnesium" in record:
        mg = record["serum_magnesium"]
        observation("19123-9" if mg["unit"] == "mg/dL" else "2601-3", mg["value"], mg["unit"])
    if record.get("pregnant"):
        observation("82810-3", None, None, text="Pregnant")
    for i, med in enumerate(record.get("medications", [])):
        concept = (
            {"text": med}
            if isinstance(med, str)
            else {
                **({"text": med["name"]} if med.get("name") else {}),
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": med["rxnorm"]}]
                if "rxnorm" in med
                else [{"system": "http://www.whocc.no/atc", "code": med["atc"]}],
            }
        )
        resources.append(
            {
                "resourceType": "MedicationStatement",
                "id": f"med-{i}",
                "status": "active",
                "subject": {"reference": f"Patient/{pid}"},
                "medicationCodeableConcept": concept,
            }
        )
    for i, text in enumerate(record.get("conditions", []) + record.get("symptoms", [])):
        resources.append(
            {
                "resourceType": "Condition",
                "id": f"cond-{i}",
                "subject": {"reference": f"Patient/{pid}"},
                "code": {"text": text},
            }
        )
    if record.get("supplement"):
        s = record["supplement"]
        text = f"Magnesium {s['form']}" + (" (elemental)" if s["dose_basis"] == "elemental" else "")
        resources.append(
            {
                "resourceType": "MedicationRequest",
                "id": "mg",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": f"Patient/{pid}"},
                "medicationCodeableConcept": {"text": text},
                "dosageInstruction": [
                    {
                        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [
                            {
                                "doseQuantity": {
                                    "value": s["dose_mg"],
                                    "unit": "mg",
                                    "code": "mg",
                                    "system": "http://unitsofmeasure.org",
                                }
                            }
                        ],
                    }
                ],
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


GOLDEN = json.loads((RULESETS / "v1.scenarios.json").read_text("utf-8"))
# FHIR carries no lactation status here, and a salt with an unknown form cannot be named as "Magnesium <form>".
AS_FHIR = [c for c in GOLDEN if "lactating" not in c["record"] and c["name"] != "salt weight of unknown form"]


@pytest.mark.parametrize("case", AS_FHIR, ids=[c["name"] for c in AS_FHIR])
def test_every_catalogue_area_as_a_fhir_bundle(evaluator, case):
    rec = case["record"]
    direct = evaluator.evaluate(rec).to_dict()
    via_fhir = evaluator.evaluate(bundle_to_record(record_to_bundle(rec), jurisdiction=rec["jurisdiction"])).to_dict()
    assert via_fhir["status"] == "ok", via_fhir.get("errors")
    assert {(f["id"], f["severity"]) for f in via_fhir["findings"]} == {
        (f["id"], f["severity"]) for f in direct["findings"]
    }
    assert via_fhir["plan"]["max_elemental_mg_per_day"] == direct["plan"]["max_elemental_mg_per_day"]


def test_format_fhir_writes_valid_detected_issues(tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    src = tmp_path / "in.ndjson"
    src.write_text(json.dumps(bundle("Martina")) + "\n" + '{"id": "X", "age_years": "old"}\n', "utf-8")
    out = tmp_path / "out.jsonl"
    proc = mgreview("evaluate", str(src), "-o", str(out), "--format", "fhir")
    first, second = lines(out)
    for line in (first, second):
        Bundle.model_validate(line)  # valid FHIR
    issues = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in first["entry"]}
    assert issues["RENAL_SEVERE"]["severity"] == "high" and issues["RENAL_SEVERE"]["patient"]["reference"]
    assert issues["LOOP_THIAZIDE_DIURETIC"]["severity"] == "moderate"
    assert second["entry"][0]["resource"]["resourceType"] == "OperationOutcome"
    assert second["entry"][0]["resource"]["issue"][0]["expression"] == ["age_years"]
    assert proc.returncode == 1


def test_ui_import_takes_ndjson_of_bundles(app):
    import io

    from review_ui import workflow

    with app.app_context():
        workflow.add_user("alice", "correct horse battery", "clinician", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    body = (json.dumps(bundle("Trey")) + "\n" + json.dumps(bundle("Martina")) + "\n").encode()
    page = client.post(
        "/import",
        data={"file": (io.BytesIO(body), "bundles.ndjson")},
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "2 new cases" in page and "0 rejected" in page
    worklist = client.get("/cases").get_data(as_text=True)
    assert "RENAL_SEVERE" in worklist and "DIGOXIN_MG" in worklist
