"""CDS Hooks security: authentication by default, JWT checks (replay, audience, lifetime, algorithms),
fhirServer only from the configured EHR list, patientId as one path segment, one deadline for the
whole prefetch, generic errors; anonymous or failed calls never write a case or an audit entry."""

from __future__ import annotations

import time

import pytest

from audit import log as audit
from review_ui.db import db
from tests.helpers.cdshooks import (
    BASE_URL,
    EHR,
    ISSUER,
    configure_jwt,
    ec_key,
    example,
    fake_fhir_server,
    hook_request,
    magnesium_order,
    raw_server,
    respond,
    rsa_key,
    synthea,
    token,
    trickle,
)
from tests.helpers.shapes import SHAPES

pytestmark = pytest.mark.skipif(not SHAPES.exists(), reason="../shared/external is not beside the checkout")
HOOK = "/cds-services/mgreview-order-select"


def written(app):
    """Cases and audit entries written (registering the shipped ruleset on first use is not a call's write)."""
    from review_ui.models import Case

    with app.app_context():
        entries = [e.action for e in audit.read(db.session) if e.action != "ruleset.register"]
        return db.session.query(Case).count(), entries


def flagged_request():
    return hook_request(synthea("Martina"), magnesium_order("x"))  # eGFR 26.7: a case for the worklist


# --- authentication is the default -----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/cds-services", None),
        ("post", HOOK, "hook"),
        ("post", HOOK + "/feedback", "feedback"),
    ],
)
def test_without_configuration_every_call_is_refused_and_nothing_written(app, method, path, body):
    client = app.test_client()
    json_body = {"hook": flagged_request(), "feedback": example("feedback_accepted.json")}.get(body)
    for _ in range(3):
        response = getattr(client, method)(path, json=json_body)
        assert response.status_code == 401 and "authentication required" in response.get_json()["error"]
    assert written(app) == (0, [])


def test_anonymous_demo_gets_cards_but_writes_nothing(app):
    app.config["CDS_HOOKS_ALLOW_ANONYMOUS"] = True
    client = app.test_client()
    discovery = client.get("/cds-services").get_json()
    assert "demo mode" in discovery["extension"]["mgreview-authentication"]
    for _ in range(5):
        body = client.post(HOOK, json=flagged_request()).get_json()
        assert "RENAL_SEVERE" in {c["source"]["topic"]["code"] for c in body["cards"]}
    feedback = client.post(HOOK + "/feedback", json=example("feedback_overridden_with_reason.json"))
    assert feedback.status_code == 401
    assert written(app) == (0, [])


def test_the_allow_anonymous_switch_must_be_exactly_true(app):
    app.config["CDS_HOOKS_ALLOW_ANONYMOUS"] = "false"  # a string from an env file is not an opt-out
    assert app.test_client().get("/cds-services").status_code == 401


def test_an_authenticated_call_writes_the_case_and_its_audit_entry(app):
    configure_jwt(app)
    EHR(app.test_client()).post(HOOK, json=flagged_request())
    assert written(app) == (1, ["import"])


def test_demo_command_opts_out_explicitly_and_says_so(capsys):
    from review_ui import create_app
    from review_ui.cli import _allow_anonymous_cds_hooks

    demo = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    _allow_anonymous_cds_hooks(demo)
    assert demo.config["CDS_HOOKS_ALLOW_ANONYMOUS"] is True and "DEMO MODE" in capsys.readouterr().out
    configured = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    configured.config["CDS_HOOKS_JWT_KEYS"] = {ISSUER: rsa_key()[1]}
    _allow_anonymous_cds_hooks(configured)
    assert not configured.config.get("CDS_HOOKS_ALLOW_ANONYMOUS") and capsys.readouterr().out == ""


# --- JWT -----------------------------------------------------------------------------------------


def _call(client, jwt_text, path="/cds-services", host=None):
    headers = {"Authorization": f"Bearer {jwt_text}"}
    if host:
        headers["Host"] = host
    return client.get(path, headers=headers)


def test_a_replayed_token_is_refused(app):
    configure_jwt(app)
    client = app.test_client()
    once = token(BASE_URL + "/cds-services")
    assert _call(client, once).status_code == 200
    again = _call(client, once)
    assert again.status_code == 401 and "already used" in again.get_json()["error"]
    assert _call(client, token(BASE_URL + "/cds-services")).status_code == 200  # a new jti is fine


def test_a_replayed_hook_call_writes_nothing_more(app):
    configure_jwt(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token(BASE_URL + HOOK)}"}
    assert client.post(HOOK, json=flagged_request(), headers=headers).status_code == 200
    before = written(app)
    assert client.post(HOOK, json=flagged_request(), headers=headers).status_code == 401
    assert written(app) == before


@pytest.mark.parametrize(
    "audience, host, status",
    [
        (BASE_URL + "/cds-services", None, 200),  # false alarm: the configured endpoint
        ("https://evil.example/cds-services", "evil.example", 401),  # aud follows a forged Host header
        (BASE_URL + "/cds-services", "evil.example", 200),  # the Host header does not matter
        (BASE_URL + "/cds-services/other", None, 401),
        ([BASE_URL + "/cds-services"], None, 200),  # aud as an array (RFC 7519)
    ],
)
def test_the_audience_comes_from_configuration_not_the_host_header(app, audience, host, status):
    configure_jwt(app)
    assert _call(app.test_client(), token(audience), host=host).status_code == status


def test_without_a_configured_base_url_no_token_is_accepted(app):
    configure_jwt(app)
    app.config["CDS_HOOKS_BASE_URL"] = None
    assert _call(app.test_client(), token(BASE_URL + "/cds-services")).status_code == 401


@pytest.mark.parametrize("lifetime, status", [(300, 200), (60, 200), (301 + 30, 401), (3600, 401), (-60, 401)], ids=str)
def test_token_lifetime_is_capped_at_five_minutes(app, lifetime, status):
    configure_jwt(app)
    assert _call(app.test_client(), token(BASE_URL + "/cds-services", lifetime=lifetime)).status_code == status


def test_a_token_issued_long_ago_with_a_late_expiry_is_refused(app):
    configure_jwt(app)
    now = int(time.time())
    old = token(BASE_URL + "/cds-services", iat=now - 3000, exp=now + 100)
    assert _call(app.test_client(), old).status_code == 401


def test_only_the_algorithms_the_readme_names(app):
    import jwt

    configure_jwt(app)
    app.config["CDS_HOOKS_JWT_KEYS"]["https://ec.example"] = ec_key()[1]
    client = app.test_client()
    audience = BASE_URL + "/cds-services"
    assert _call(client, token(audience)).status_code == 200  # RS384
    assert (
        _call(client, token(audience, key=ec_key()[0], issuer="https://ec.example", algorithm="ES384")).status_code
        == 200
    )
    assert _call(client, token(audience, algorithm="RS256")).status_code == 401
    assert _call(client, token(audience, algorithm="PS384")).status_code == 401
    forged = jwt.encode(
        {"iss": ISSUER, "aud": audience, "exp": int(time.time()) + 60},
        "shared-secret-0123456789abcdef",
        algorithm="HS256",
    )
    assert _call(client, forged).status_code == 401
    unsigned = jwt.encode({"iss": ISSUER, "aud": audience}, None, algorithm="none")
    assert _call(client, unsigned).status_code == 401
    assert _call(client, token(audience, issuer="https://unknown.example")).status_code == 401


# --- the EHR's FHIR server -----------------------------------------------------------------------


@pytest.fixture
def ehr(app):
    configure_jwt(app)
    return EHR(app.test_client())


def _without_prefetch(resources, server):
    request = hook_request(resources, magnesium_order("x"), prefetch=False)
    request["fhirServer"] = server
    request["fhirAuthorization"] = {
        "access_token": "ehr-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "mgreview",
    }
    return request


@pytest.mark.parametrize(
    "server, configured, allowed",
    [
        ("{base}", ["{base}"], True),  # false alarm: the configured EHR, on loopback
        ("{base}/", ["{base}"], True),  # a trailing slash is the same base
        ("{base}", [], False),  # nothing configured: nothing is fetched
        ("{other}", ["{base}"], False),  # another loopback port
        ("file:///etc/passwd", ["{base}", "file:///etc/passwd"], False),
        ("ftp://127.0.0.1/fhir", ["ftp://127.0.0.1/fhir"], False),
        ("http://ehr.example/fhir", ["http://ehr.example/fhir"], False),  # http off loopback, even if configured
        ("http://user@{hostport}/fhir", ["{base}"], False),
        ("{base}?x=1", ["{base}"], False),
        ("{base}/../admin", ["{base}"], False),
    ],
)
def test_fhir_server_only_from_the_configured_list(app, ehr, server, configured, allowed):
    resources = synthea("Martina")
    with fake_fhir_server(resources) as (base, seen):
        fill = {"base": base, "other": base.replace(":", ":1", 2), "hostport": base.split("/")[2]}
        app.config["CDS_HOOKS_FHIR_SERVERS"] = [c.format(**fill) for c in configured]
        response = ehr.post(HOOK, json=_without_prefetch(resources, server.format(**fill)))
    if allowed:
        assert response.status_code == 200 and len(seen) == 5
    else:
        assert response.status_code == 400 and "not one of the EHR FHIR servers" in response.get_json()["error"]
        assert seen == []
    assert "ehr-token" not in response.get_data(as_text=True)


def test_redirects_are_not_followed(app, ehr):
    resources = synthea("Martina")
    with fake_fhir_server(resources) as (elsewhere, seen_elsewhere):
        redirect = respond("302 Found", {"Location": elsewhere + "/Patient/x"}, b"")
        with raw_server(redirect) as (base, seen):
            app.config["CDS_HOOKS_FHIR_SERVERS"] = [base]
            response = ehr.post(HOOK, json=_without_prefetch(resources, base))
    assert response.status_code == 502 and response.get_json() == {"error": "the FHIR server could not be read"}
    assert len(seen) == 1 and seen_elsewhere == []


@pytest.mark.parametrize(
    "patient_id, status",
    [("abc-1.2", 200), ("../../admin", 400), ("x/../Observation", 400), ("a%2Fb", 400), ("a b", 400)],
)
def test_patient_id_is_one_path_segment(app, ehr, patient_id, status):
    resources = synthea("Martina")
    next(r for r in resources if r["resourceType"] == "Patient")["id"] = patient_id
    with fake_fhir_server(resources) as (base, seen):
        app.config["CDS_HOOKS_FHIR_SERVERS"] = [base]
        response = ehr.post(HOOK, json=_without_prefetch(resources, base))
    assert response.status_code == status
    if status == 200:
        assert seen[0][0] == f"/fhir/Patient/{patient_id}?" or seen[0][0] == f"/fhir/Patient/{patient_id}"
    else:
        assert seen == []


def test_a_trickling_server_is_cut_at_one_deadline(app, ehr):
    """A byte every 0.5 s would hold each read for ever: the whole prefetch ends at the deadline."""
    resources = synthea("Martina")
    with raw_server(trickle(every_s=0.5, stop_after_s=20)) as (base, _seen):
        app.config.update(CDS_HOOKS_FHIR_SERVERS=[base], CDS_HOOKS_FETCH_DEADLINE_S=1.5)
        start = time.monotonic()
        response = ehr.post(HOOK, json=_without_prefetch(resources, base))
        elapsed = time.monotonic() - start
    assert response.status_code == 504 and response.get_json() == {"error": "the FHIR server did not answer in time"}
    assert elapsed < 4


def test_a_prompt_server_within_the_deadline_is_read(app, ehr):  # false alarm for the deadline
    resources = synthea("Martina")
    with fake_fhir_server(resources) as (base, seen):
        app.config.update(CDS_HOOKS_FHIR_SERVERS=[base], CDS_HOOKS_FETCH_DEADLINE_S=5)
        response = ehr.post(HOOK, json=_without_prefetch(resources, base))
    assert response.status_code == 200 and len(seen) == 5


@pytest.mark.parametrize(
    "handler",
    [
        respond("500 Internal Server Error", {}, b"Traceback: secret-db-password at /srv/ehr"),
        respond("200 OK", {"Content-Type": "application/fhir+json"}, b"{not json secret-db-password"),
        respond("200 OK", {"Content-Type": "application/fhir+json"}, b'["secret-db-password"]'),
        None,  # nothing listening: connection refused
    ],
)
def test_fetch_errors_are_generic(app, ehr, handler):
    resources = synthea("Martina")
    if handler is None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{s.getsockname()[1]}/fhir"
        s.close()
        app.config["CDS_HOOKS_FHIR_SERVERS"] = [base]
        response = ehr.post(HOOK, json=_without_prefetch(resources, base))
    else:
        with raw_server(handler) as (base, _seen):
            app.config["CDS_HOOKS_FHIR_SERVERS"] = [base]
            response = ehr.post(HOOK, json=_without_prefetch(resources, base))
    assert response.status_code == 502 and response.get_json() == {"error": "the FHIR server could not be read"}
    assert written(app) == (0, [])


def test_a_failed_call_writes_nothing(app, ehr):
    request = flagged_request()
    request["prefetch"]["patient"]["birthDate"] = "13/05/1953"
    assert ehr.post(HOOK, json=request).status_code == 400
    assert written(app) == (0, [])
