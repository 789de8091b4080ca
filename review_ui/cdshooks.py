"""CDS Hooks 2.0 service: discovery, order-select and order-sign for a draft magnesium order, feedback.

Prefetch templates ask for the patient, labs, medications and conditions; what the EHR did not
prefetch is fetched from its FHIR server with the access token it sent. Cards come from the same
engine evaluation as everything else. With CDS_HOOKS_JWT_KEYS configured, every call must carry a
bearer JWT signed by a known issuer for this endpoint (the CDS Hooks security model).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for

from engine import cards as cardmaker
from engine import fhir
from engine.errors import RecordError
from review_ui import workflow

cds = Blueprint("cds", __name__)
LOINC_CODES = ",".join(
    sorted(f"http://loinc.org|{c}" for c in fhir.EGFR_LOINC | fhir.CREATININE_LOINC | fhir.MAGNESIUM_LOINC)
)
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "labs": f"Observation?patient={{{{context.patientId}}}}&code={LOINC_CODES}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&status=active",
    "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
}
SERVICES = {
    "mgreview-order-select": {
        "hook": "order-select",
        "title": "mgreview: oral magnesium safety check",
        "description": "Checks a draft oral magnesium order against kidney function, serum magnesium, interacting "
        "medicines, conditions and the US/EU upper limits; suggests the safe dose.",
        "prefetch": PREFETCH,
        "usageRequirements": "Decision support for a clinician who decides.",
    },
    "mgreview-order-sign": {
        "hook": "order-sign",
        "title": "mgreview: oral magnesium safety check at signing",
        "description": "The same check when the magnesium order is signed.",
        "prefetch": PREFETCH,
    },
}


class HookError(Exception):
    """A request we cannot answer, with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@cds.errorhandler(HookError)
def _hook_error(e: HookError) -> tuple[Response, int]:
    return jsonify({"error": e.message}), e.status


def _authorize() -> str:
    """Verify the bearer JWT when keys are configured; return the caller's identity for the audit log."""
    keys: dict[str, str] = current_app.config.get("CDS_HOOKS_JWT_KEYS") or {}
    if not keys:
        return "cds-client"
    import jwt

    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise HookError(401, "a bearer JWT is required")
    token = header.removeprefix("Bearer ").strip()
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        if issuer not in keys:
            raise HookError(401, "unknown JWT issuer")
        claims = jwt.decode(
            token,
            keys[issuer],
            algorithms=["RS384", "ES384", "RS256"],
            audience=request.base_url,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as e:
        raise HookError(401, f"JWT refused: {e}") from None
    return f"{claims['iss']}:{claims.get('sub', '')}"


@cds.route("/cds-services")
def discovery() -> Any:
    """The discovery document."""
    _authorize()
    return jsonify({"services": [{"id": sid, **definition} for sid, definition in SERVICES.items()]})


@cds.route("/sources")
def sources() -> Any:
    """The ruleset's source citations (cards link here)."""
    from review_ui.views import evaluator

    return render_template("sources.html", sources=evaluator().ruleset.sources, ruleset=evaluator().ruleset)


def _fetch(fhir_server: str, token: str | None, query: str) -> Any:
    url = fhir_server.rstrip("/") + "/" + query
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise HookError(502, f"could not read {query.split('?')[0]} from the FHIR server: {e}") from None


def _render(template: str, context: dict[str, Any]) -> str:
    out = template.replace("{{context.patientId}}", urllib.parse.quote(str(context.get("patientId", ""))))
    return out.replace("{{context.userId}}", urllib.parse.quote(str(context.get("userId", ""))))


def _bundle(body: dict[str, Any]) -> dict[str, Any]:
    """One collection Bundle from prefetch (or the FHIR server) plus the draft orders."""
    context = body.get("context") or {}
    prefetch = body.get("prefetch") or {}
    server = body.get("fhirServer")
    token = (body.get("fhirAuthorization") or {}).get("access_token")
    resources: list[dict[str, Any]] = []
    for key, template in PREFETCH.items():
        value = prefetch.get(key)
        if value is None:
            if not server:
                if key == "patient":
                    raise HookError(412, "the patient was neither prefetched nor readable from a FHIR server")
                continue  # missing data becomes explicit findings (e.g. RENAL_DATA_MISSING)
            value = _fetch(server, token, _render(template, context))
        if value.get("resourceType") == "Bundle":
            resources += [e.get("resource") for e in value.get("entry") or [] if e.get("resource")]
        else:
            resources.append(value)
    drafts = context.get("draftOrders") or {}
    resources += [e.get("resource") for e in drafts.get("entry") or [] if e.get("resource")]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _request_body(service_id: str) -> tuple[str, dict[str, Any]]:
    """Authorise the caller, check the service exists, and return (caller, JSON body)."""
    caller = _authorize()
    if service_id not in SERVICES:
        abort(404)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise HookError(400, "expected a JSON object")
    return caller, body


@cds.route("/cds-services/<service_id>", methods=["POST"])
def hook(service_id: str) -> Any:
    """order-select / order-sign: cards for a draft magnesium order, none for other orders."""
    from review_ui.views import evaluator

    caller, body = _request_body(service_id)
    if body.get("hook") != SERVICES[service_id]["hook"]:
        raise HookError(400, f"expected a CDS Hooks request for hook {SERVICES[service_id]['hook']!r}")
    drafts = ((body.get("context") or {}).get("draftOrders") or {}).get("entry") or []
    draft = fhir.draft_magnesium_order([e.get("resource") or {} for e in drafts])
    if draft is None:  # not a magnesium order: nothing to say, nothing fetched
        return jsonify({"cards": []})
    bundle = _bundle(body)
    authored = draft.get("authoredOn")
    as_of = fhir.parse_date(authored) if authored else datetime.now(UTC).date()
    try:
        record = fhir.bundle_to_record(bundle, as_of=as_of)
    except RecordError as e:
        raise HookError(400, "; ".join(str(err) for err in e.errors)) from None
    result = evaluator().evaluate(record)
    if result["status"] != "ok":
        raise HookError(400, "; ".join(f"{e['field']}: {e['reason']}" for e in result["errors"]))
    if result["plan"]["requires_physician"]:
        # orders a physician must decide also reach the clinicians' worklist (idempotent: one case per record);
        # a major finding that timing mitigates (a separation window) stays on the card only
        workflow.import_records(
            [(1, record)],
            filename=f"cds-hooks {service_id} {body.get('hookInstance', '')}",
            actor=caller,
            evaluator=evaluator(),
        )
    made = cardmaker.cards(
        result,
        hook_instance=str(body.get("hookInstance", "")),
        draft_order=draft,
        sources_url=url_for("cds.sources", _external=True),
        override_reasons=workflow.OVERRIDE_CODES,
    )
    return jsonify({"cards": made})


@cds.route("/cds-services/<service_id>/feedback", methods=["POST"])
def feedback(service_id: str) -> Any:
    """Record accepted and overridden cards, with the override reason, in the audit log."""
    actor, body = _request_body(service_id)
    if not isinstance(body.get("feedback"), list):
        raise HookError(400, 'expected {"feedback": [...]}')
    try:
        workflow.record_cds_feedback(service_id, body["feedback"], actor=actor)
    except workflow.WorkflowError as e:
        raise HookError(400, e.message) from None
    return jsonify({})
