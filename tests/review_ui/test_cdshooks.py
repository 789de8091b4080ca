"""CDS Hooks 2.0 service: spec examples and our responses against the spec's shapes, end-to-end hook calls
through the Flask test client with Synthea data as prefetch, FHIR server fallback, feedback, JWT; and the
spec's own requests as written (siblings the service does not use are skipped and reported), malformed
bodies (always a JSON 4xx with the reason, never a 500)."""

import copy
import json
import uuid

import pytest

from audit import log as audit
from review_ui.db import db
from tests.helpers.cdshooks import (
    EHR,
    configure_jwt,
    example,
    fake_fhir_server,
    hook_request,
    magnesium_order,
    prefetch_from,
    synthea,
)
from tests.helpers.shapes import SHAPES, Shapes

pytestmark = pytest.mark.skipif(not SHAPES.exists(), reason="../shared/external is not beside the checkout")
ORDER_SELECT = {"CDSHooksRequest.context": "http://cds-hooks.hl7.org/StructureDefinition/CDSHookOrderSelectContext"}


@pytest.fixture(scope="module")
def shapes():
    return Shapes()


@pytest.fixture
def client(app):
    """An EHR calling with a signed JWT per call (authentication is the default)."""
    configure_jwt(app)
    return EHR(app.test_client())


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
    assert response.status_code == 200 and response.get_json()["cards"] == []
    assert shapes.validate(response.get_json(), "CDSHooksResponse") == []


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
    with fake_fhir_server(resources) as (base, seen):
        app.config["CDS_HOOKS_FHIR_SERVERS"] = [base]
        request = hook_request(resources, magnesium_order("x"), prefetch=False)
        request["fhirServer"] = base
        request["fhirAuthorization"] = {
            "access_token": "tok-123",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "mgreview",
        }
        body = client.post("/cds-services/mgreview-order-select", json=request).get_json()
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


# --- the spec's own requests, as written -----------------------------------------------------------

SPEC_REQUESTS = [
    "order-select_context_R4.json",
    "order-sign_context_R4.json",
    "order-select_context_R4_v1.0.1-no-bundle-type.json",
    "order-sign_context_R4_v1.0.1-no-bundle-type.json",
    "order-select_context_STU3.json",  # STU3 puts doseQuantity on the Dosage itself
]


def spec_request(name, *, magnesium):
    """The spec example's context as written; with `magnesium`, its MedicationRequest names magnesium.

    The patient is Trey (Synthea: levothyroxine, hydrochlorothiazide) under the example's patient id.
    """
    body = {"hook": "order-sign" if "order-sign" in name else "order-select", "hookInstance": str(uuid.uuid4())}
    body.update(example(name))
    if magnesium:
        (order,) = [
            e["resource"]
            for e in body["context"]["draftOrders"]["entry"]
            if e["resource"]["resourceType"] == "MedicationRequest"
        ]
        order["medicationCodeableConcept"] = {"text": "Magnesium Oxide 400 MG Oral Tablet"}
    resources = synthea("Trey")
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    patient["id"] = body["context"]["patientId"]
    body["prefetch"] = prefetch_from(resources)
    return body


@pytest.mark.parametrize("name", SPEC_REQUESTS)
@pytest.mark.parametrize("magnesium", [True, False], ids=["magnesium", "as-written"])
def test_spec_requests_with_a_sibling_nutrition_order(client, shapes, name, magnesium):
    body = spec_request(name, magnesium=magnesium)
    service = "mgreview-order-sign" if "order-sign" in name else "mgreview-order-select"
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert shapes.validate(out, "CDSHooksResponse") == []
    skipped = out["extension"]["mgreview-skipped"]
    assert {"resource": "NutritionOrder/pureeddiet-simple", "reason": "not a medication order"} in skipped
    stu3_place = "select" not in name or "STU3" in name
    reading = (
        "Dosage.doseQuantity (STU3 place) read in doseAndRate"
        if stu3_place
        else "doseAndRate object read as a one-item list"
    )
    assert {"resource": "MedicationRequest/smart-MedicationRequest-103", "reason": reading} in skipped
    summaries = [c["summary"] for c in out["cards"]]
    if magnesium:  # the magnesium order is checked: Trey takes levothyroxine
        assert "Separate from levothyroxine by 4 h" in summaries
    else:  # amoxicillin: no magnesium, no cards
        assert summaries == []


def test_resources_of_another_patient_are_skipped_and_a_wrong_patient_is_refused(client):
    resources = synthea("Martina")
    request = hook_request(resources, magnesium_order("x"))
    stray = copy.deepcopy(request["prefetch"]["labs"]["entry"][0]["resource"])
    stray.update(id="stray-1", subject={"reference": "Patient/someone-else"})
    request["prefetch"]["labs"]["entry"].append({"resource": stray})
    request["prefetch"]["labs"]["entry"].append(
        {"resource": {"resourceType": "OperationOutcome", "id": "oo", "issue": []}}
    )
    out = client.post("/cds-services/mgreview-order-select", json=request).get_json()
    assert {"resource": "Observation/stray-1", "reason": "about another patient"} in out["extension"][
        "mgreview-skipped"
    ]
    assert {"resource": "OperationOutcome/oo", "reason": "not used by this service"} in out["extension"][
        "mgreview-skipped"
    ]
    assert "RENAL_SEVERE" in {c["source"]["topic"]["code"] for c in out["cards"]}
    request["prefetch"]["patient"]["id"] = "someone-else"
    response = client.post("/cds-services/mgreview-order-select", json=request)
    assert response.status_code == 400 and "not context.patientId" in response.get_json()["error"]


def test_a_draft_ordered_together_counts_as_a_medication(client):
    """Doxycycline ordered in the same session as the magnesium: the separation card appears."""
    request = hook_request(synthea("Gayla"), magnesium_order("x", 100, 2))
    doxy = {
        **magnesium_order("x"),
        "id": "doxy-1",
        "medicationCodeableConcept": {"text": "Doxycycline 100 MG Oral Capsule"},
    }
    plain = client.post("/cds-services/mgreview-order-select", json=request).get_json()
    request["context"]["draftOrders"]["entry"].append({"resource": doxy})
    together = client.post("/cds-services/mgreview-order-select", json=request).get_json()
    codes = lambda body: {c["source"]["topic"]["code"] for c in body["cards"]}  # noqa: E731
    assert "TETRACYCLINE_SEPARATION" in codes(together) and "TETRACYCLINE_SEPARATION" not in codes(plain)


# --- malformed bodies: a JSON 4xx with the reason, never a 500 --------------------------------------


def _set(path, value):
    def change(body):
        *parents, last = path
        target = body
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _labs0(body):
    return body["prefetch"]["labs"]["entry"][0]["resource"]


MALFORMED = [
    # (what, change to a valid request, status, reason in the error)
    ("valid request (false alarm)", lambda b: None, 200, None),
    ("context a list", lambda b: b.update(context=[b["context"]]), 400, "context must be a JSON object"),
    ("prefetch a list", lambda b: b.update(prefetch=[b["prefetch"]]), 400, "prefetch must be a JSON object"),
    ("prefetch value a list", _set(["prefetch", "labs"], []), 400, "prefetch.labs must be a JSON object"),
    ("prefetch value null (false alarm)", _set(["prefetch", "labs"], None), 200, None),
    ("draftOrders a list", _set(["context", "draftOrders"], []), 400, "context.draftOrders must be a JSON object"),
    ("draftOrders entry a string", _set(["context", "draftOrders", "entry"], ["x"]), 400, "entry[0] must be"),
    ("entry not a list", _set(["context", "draftOrders", "entry"], {"resource": {}}), 400, "entry must be a list"),
    ("patientId a number", _set(["context", "patientId"], 12), 400, "context.patientId"),
    ("patientId a path", _set(["context", "patientId"], "../Observation"), 400, "not a FHIR id"),
    ("hookInstance missing", lambda b: b.pop("hookInstance"), 400, "hookInstance"),
    ("selections a string", _set(["context", "selections"], "MedicationRequest/1"), 400, "selections"),
    (
        "authoredOn not a date",
        lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].update(authoredOn="yesterday"),
        400,
        "authoredOn",
    ),
    (
        "authoredOn a month (false alarm)",
        lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].update(authoredOn="2021-01"),
        200,
        None,
    ),
    ("birthDate not a date", _set(["prefetch", "patient", "birthDate"], "13/01/1913"), 400, "birthDate"),
    ("lab date not a date", lambda b: _labs0(b).update(effectiveDateTime="2020-13-45"), 400, "effectiveDateTime"),
    ("lab without status", lambda b: _labs0(b).pop("status"), 400, "status"),
    ("fhirAuthorization a string", lambda b: b.update(fhirAuthorization="tok"), 400, "fhirAuthorization"),
]


@pytest.mark.parametrize("what, change, status, reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_the_reason(client, what, change, status, reason):
    body = hook_request(synthea("Trey"), magnesium_order("x"))
    change(body)
    response = client.post("/cds-services/mgreview-order-select", json=body)
    assert response.status_code == status and response.is_json, response.get_data(as_text=True)[:300]
    if reason:
        assert reason in response.get_json()["error"]


RAW = [
    ("not JSON", b"{", 400, "not JSON"),
    ("not UTF-8", b"\xff\xfe{}", 400, "not JSON"),
    ("a JSON array", b"[]", 400, "expected a JSON object"),
    ("10,000-deep JSON", b"[" * 10_000 + b"]" * 10_000, 400, "nested deeper"),
    (
        "100-deep object",
        b'{"hook": "order-select", "x": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}",
        400,
        "nested deeper",
    ),
    ("11 MB body", b'{"hook": "order-select", "pad": "' + b"x" * 11_000_000 + b'"}', 413, "over"),
]


@pytest.mark.parametrize("what, data, status, reason", RAW, ids=[r[0] for r in RAW])
def test_malformed_bodies_get_the_reason(client, what, data, status, reason):
    response = client.post("/cds-services/mgreview-order-select", data=data, content_type="application/json")
    assert response.status_code == status and response.is_json
    assert reason in response.get_json()["error"]


def test_every_synthea_patient_gets_readable_cards(client, shapes):
    """Every Synthea bundle as prefetch with a magnesium oxide order: valid responses, readable summaries."""
    from tests.helpers.cdshooks import EXTERNAL

    for path in sorted((EXTERNAL / "fhir").glob("*.json")):
        resources = [e["resource"] for e in json.loads(path.read_text("utf-8"))["entry"]]
        order = magnesium_order("x", 400, 2, "Magnesium Oxide 400 MG Oral Tablet")
        response = client.post("/cds-services/mgreview-order-sign", json=hook_request(resources, order, "order-sign"))
        assert response.status_code == 200, (path.name, response.get_json())
        body = response.get_json()
        assert shapes.validate(body, "CDSHooksResponse") == [], path.name
        for card in body["cards"]:
            assert len(card["summary"]) < 140 and "_" not in card["summary"], card["summary"]
        uuids = [s["uuid"] for c in body["cards"] for s in c.get("suggestions", [])]
        assert len(uuids) == len(set(uuids)) and len(uuids) <= 1, path.name


def test_a_deceased_patient_gets_one_card_saying_so_and_a_living_one_does_not(client):
    """Synthea's Leatrice McCullough died in 1971: the order is not checked, and the prescriber is told so."""
    from tests.helpers.cdshooks import EXTERNAL

    def call(name):
        path = next((EXTERNAL / "fhir").glob(f"{name}*.json"))
        resources = [e["resource"] for e in json.loads(path.read_text("utf-8"))["entry"]]
        order = magnesium_order("x", 400, 2, "Magnesium Oxide 400 MG Oral Tablet")
        response = client.post("/cds-services/mgreview-order-sign", json=hook_request(resources, order, "order-sign"))
        assert response.status_code == 200
        return response.get_json()["cards"]

    (card,) = call("Leatrice_McCullough")
    assert card["indicator"] == "critical" and card["summary"] == "Patient is recorded as deceased: no magnesium plan"
    assert "deceasedDateTime" in card["detail"] and "suggestions" not in card
    living = call("Gayla_Ferry")
    assert living and all("deceased" not in c["summary"] for c in living)
