"""CDS Hooks 2.0 service: spec examples and our responses against the spec's shapes, end-to-end hook calls
through the Flask test client with Synthea data as prefetch, FHIR server fallback, feedback, JWT."""

import copy
import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from audit import log as audit
from review_ui import create_app
from review_ui.db import db
from tests.cdshooks_shapes import SHAPES, Shapes

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"
EXAMPLES = EXTERNAL / "cdshooks" / "examples"
pytestmark = pytest.mark.skipif(not SHAPES.exists(), reason="../shared/external is not beside the checkout")
ORDER_SELECT = {"CDSHooksRequest.context": "http://cds-hooks.hl7.org/StructureDefinition/CDSHookOrderSelectContext"}


def example(name):
    return json.loads((EXAMPLES / name).read_text("utf-8"))


@pytest.fixture(scope="module")
def shapes():
    return Shapes()


def synthea(name):
    data = json.loads(next((EXTERNAL / "fhir").glob(f"{name}*.json")).read_text("utf-8"))
    return [e["resource"] for e in data["entry"]]


def searchset(resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def prefetch_from(resources):
    by_type = lambda t: [r for r in resources if r["resourceType"] == t]  # noqa: E731
    return {
        "patient": by_type("Patient")[0],
        "labs": searchset(by_type("Observation")),
        "medicationRequests": searchset([r for r in by_type("MedicationRequest") if r["status"] == "active"]),
        "medicationStatements": searchset([]),
        "conditions": searchset(by_type("Condition")),
    }


def magnesium_order(patient_id, dose_mg=200, per_day=2, text="Magnesium citrate (elemental) oral tablet"):
    return {
        "resourceType": "MedicationRequest",
        "id": "mg-draft-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2021-01-15",
        "medicationCodeableConcept": {"text": text},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose_mg,
                            "unit": "mg",
                            "code": "mg",
                            "system": "http://unitsofmeasure.org",
                        }
                    }
                ],
            }
        ],
    }


def hook_request(resources, order, hook="order-select", prefetch=True):
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    body = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/123",
            "patientId": patient["id"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
        },
    }
    if hook == "order-select":
        body["context"]["selections"] = [f"MedicationRequest/{order['id']}"]
    if prefetch:
        body["prefetch"] = prefetch_from(resources)
    return body


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.mark.parametrize(
    "name, shape",
    [
        ("discovery-response.json", "CDSHooksServices"),
        ("response_cards.json", "CDSHooksResponse"),
        ("response_no-cards.json", "CDSHooksResponse"),
    ],
)
def test_spec_examples_fit_the_spec_shapes(shapes, name, shape):
    assert shapes.validate(example(name), shape) == []


def test_spec_order_select_request_fits_and_the_validator_has_teeth(shapes):
    request = {"hook": "order-select", "hookInstance": str(uuid.uuid4()), **example("order-select_context_R4.json")}
    assert shapes.validate(request, "CDSHooksRequest", ORDER_SELECT) == []
    broken = copy.deepcopy(example("response_cards.json"))
    del broken["cards"][0]["summary"]
    broken["cards"][0]["indicator"] = 3
    assert set(shapes.validate(broken, "CDSHooksResponse")) == {
        "CDSHooksResponse.cards.summary: required",
        "CDSHooksResponse.cards.indicator: expected code",
    }


def test_discovery_fits_the_shape(client, shapes):
    body = client.get("/cds-services").get_json()
    assert shapes.validate(body, "CDSHooksServices") == []
    assert {s["hook"] for s in body["services"]} == {"order-select", "order-sign"}
    assert all("{{context.patientId}}" in s["prefetch"]["patient"] for s in body["services"])


def test_non_magnesium_order_gets_no_cards(client, shapes):
    request = {"hook": "order-select", "hookInstance": str(uuid.uuid4()), **example("order-select_context_R4.json")}
    response = client.post("/cds-services/mgreview-order-select", json=request)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_severe_renal_impairment_gives_a_critical_card_that_removes_the_order(client, shapes):
    resources = synthea("Martina")  # eGFR 26.7, Lasix, ferrous sulfate
    body = client.post(
        "/cds-services/mgreview-order-select", json=hook_request(resources, magnesium_order("x"))
    ).get_json()
    assert shapes.validate(body, "CDSHooksResponse") == []
    renal = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "RENAL_SEVERE")
    assert renal["indicator"] == "critical" and len(renal["summary"]) < 140
    assert "26.7" in renal["detail"] and renal["source"]["url"].endswith("/sources#S10")
    (suggestion,) = renal["suggestions"]
    assert suggestion["actions"][0] == {
        "type": "delete",
        "description": "Remove the draft magnesium order",
        "resourceId": "MedicationRequest/mg-draft-1",
    }
    assert {r["code"] for r in renal["overrideReasons"]} >= {"PHYSICIAN_ORDER"}
    indicators = {c["source"]["topic"]["code"]: c["indicator"] for c in body["cards"]}
    assert indicators["LOOP_THIAZIDE_DIURETIC"] == "warning"


def test_dose_above_limit_suggests_the_safe_dose(client, shapes):
    resources = synthea("Trey")  # eGFR 93.9; 107 years old, US limit 350
    order = magnesium_order("x", dose_mg=250, per_day=2)  # 500 mg/day elemental
    body = client.post(
        "/cds-services/mgreview-order-sign", json=hook_request(resources, order, "order-sign")
    ).get_json()
    assert shapes.validate(body, "CDSHooksResponse") == []
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "DOSE_ABOVE_UL_EU")
    assert card["indicator"] == "warning"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "update"
    dose = action["resource"]["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] * dose["timing"]["repeat"]["frequency"] == 250


def test_missing_prefetch_is_read_from_the_fhir_server_with_the_token(app, client):
    resources = synthea("Martina")
    seen: list[tuple[str, str]] = []
    fake = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})

    @fake.route("/fhir/<path:query>")
    def fhir_server(query):
        from flask import request

        seen.append((request.full_path, request.headers.get("Authorization", "")))
        prefetch = prefetch_from(resources)
        kind = query.split("/")[0].split("?")[0]
        if kind == "Patient":
            return prefetch["patient"]
        key = {
            "Observation": "labs",
            "MedicationRequest": "medicationRequests",
            "MedicationStatement": "medicationStatements",
            "Condition": "conditions",
        }[kind]
        return prefetch[key]

    server = make_server("127.0.0.1", 0, fake, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = hook_request(resources, magnesium_order("x"), prefetch=False)
        request["fhirServer"] = f"http://127.0.0.1:{server.server_port}/fhir"
        request["fhirAuthorization"] = {
            "access_token": "tok-123",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "mgreview",
        }
        body = client.post("/cds-services/mgreview-order-select", json=request).get_json()
    finally:
        server.shutdown()
    assert "RENAL_SEVERE" in {c["source"]["topic"]["code"] for c in body["cards"]}
    assert len(seen) == 5 and all(auth == "Bearer tok-123" for _, auth in seen)
    assert any("Observation?patient=" in path and "98979-8" in path for path, _ in seen)


def test_missing_patient_without_fhir_server_is_a_clear_error(client):
    request = hook_request(synthea("Trey"), magnesium_order("x"))
    del request["prefetch"]["patient"]
    response = client.post("/cds-services/mgreview-order-select", json=request)
    assert response.status_code == 412 and "neither prefetched" in response.get_json()["error"]


@pytest.mark.parametrize(
    "name, outcome", [("feedback_overridden_with_reason.json", "overridden"), ("feedback_accepted.json", "accepted")]
)
def test_feedback_is_recorded_in_the_audit_log(app, client, name, outcome):
    response = client.post("/cds-services/mgreview-order-select/feedback", json=example(name))
    assert response.status_code == 200
    with app.app_context():
        (entry,) = audit.read(db.session, action=f"cds.feedback.{outcome}")
        assert entry.target_id == example(name)["feedback"][0]["card"]
        if outcome == "overridden":
            assert "d7ecf885" in entry.reason and "A comment entered by the clinician." in entry.reason
        assert audit.verify(db.session).ok


def test_bad_feedback_is_refused(client):
    response = client.post("/cds-services/mgreview-order-select/feedback", json={"feedback": [{"card": "x"}]})
    assert response.status_code == 400 and "accepted or overridden" in response.get_json()["error"]


@pytest.fixture
def signing_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode()


def token(key, audience, issuer="https://ehr.example/fhir"):
    import jwt

    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()), "sub": "client"}
    return jwt.encode(claims, key, algorithm="RS384")


def test_jwt_is_required_when_enabled(app, signing_key):
    key, public = signing_key
    app.config["CDS_HOOKS_JWT_KEYS"] = {"https://ehr.example/fhir": public}
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401
    import jwt

    forged = jwt.encode(
        {"iss": "https://ehr.example/fhir", "aud": "http://localhost/cds-services"},
        "a-shared-secret-that-no-issuer-uses-1234",
        algorithm="HS256",
    )
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    wrong_audience = token(key, "http://localhost/other")
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {wrong_audience}"}).status_code == 401
    good = token(key, "http://localhost/cds-services")
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_flagged_order_reaches_the_worklist_once(app, client):
    from review_ui.models import Case

    request = hook_request(synthea("Martina"), magnesium_order("x"))
    client.post("/cds-services/mgreview-order-select", json=request)
    client.post("/cds-services/mgreview-order-sign", json={**request, "hook": "order-sign"})
    with app.app_context():
        (case,) = db.session.query(Case).all()
        assert case.highest_severity == "contraindicated" and case.batch.filename.startswith("cds-hooks")
        # the shipped ruleset is registered on first use, then the order is imported as a case
        assert {e.action for e in audit.read(db.session)} == {"ruleset.register", "import"}


def test_unflagged_order_does_not_create_a_case(app, client):
    from review_ui.models import Case

    client.post("/cds-services/mgreview-order-select", json=hook_request(synthea("Trey"), magnesium_order("x", 50, 2)))
    with app.app_context():
        assert db.session.query(Case).count() == 0
