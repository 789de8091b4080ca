"""CDS Hooks 2.0 service: discovery, order-select and order-sign for a draft magnesium order, feedback.

Secure by default: every call carries a bearer JWT signed (RS384 or ES384) by a configured issuer for
this endpoint (`aud` built from CDS_HOOKS_BASE_URL, never from the Host header), at most 5 minutes
long and used once (`jti` kept until it expires). Without CDS_HOOKS_JWT_KEYS every call is refused,
unless CDS_HOOKS_ALLOW_ANONYMOUS is set (the demo does): then cards are returned but nothing is written.

The request is checked for what the service uses (the context, the draft orders, the prefetch it asked
for); resources it does not need are skipped and listed in the response's `extension`. What the EHR did
not prefetch is read from its `fhirServer` only when that is a configured EHR base URL (https; http only
on loopback), without following redirects, all reads bounded by one deadline; fetch failures are a
generic 502/504 (details go to the log only).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from engine import cards as cardmaker
from engine import fhir
from engine.errors import RecordError
from review_ui import workflow
from review_ui.citations import citations
from review_ui.db import db
from review_ui.intake import evaluator
from review_ui.models import CdsTokenSeen

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
# Resource types the service reads; anything else in a request is skipped and reported.
USED_TYPES = frozenset(
    {"Patient", "Observation", "MedicationRequest", "MedicationStatement", "Medication", "Condition"}
)
ALGORITHMS = ["RS384", "ES384"]  # the CDS Hooks 2.0 recommendation; never none or HMAC
MAX_TOKEN_LIFETIME_S = 300  # CDS Hooks: "exp ... no more than 5 minutes in the future"
CLOCK_LEEWAY_S = 30
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 id
MAX_JSON_DEPTH = 64  # FHIR in a hook request nests about 12 deep
DEFAULTS: dict[str, Any] = {
    "CDS_HOOKS_JWT_KEYS": {},  # issuer -> PEM public key
    "CDS_HOOKS_BASE_URL": None,  # e.g. https://cds.example.org: the JWT audience is this + the path
    "CDS_HOOKS_ALLOW_ANONYMOUS": False,  # demo only: calls without a JWT get cards; nothing is written
    "CDS_HOOKS_FHIR_SERVERS": [],  # EHR FHIR base URLs the service may read from
    "CDS_HOOKS_FETCH_DEADLINE_S": 10.0,  # all FHIR reads of one call together
    "CDS_HOOKS_MAX_FETCH_BYTES": 20 * 1024 * 1024,  # all FHIR reads of one call together
    "CDS_HOOKS_MAX_BODY_BYTES": 10 * 1024 * 1024,
}


def _config(key: str) -> Any:
    return current_app.config.get(key, DEFAULTS[key])


class HookError(Exception):
    """A request we cannot answer, with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@cds.errorhandler(HookError)
def _hook_error(e: HookError) -> tuple[Response, int]:
    return jsonify({"error": e.message}), e.status


@cds.errorhandler(RequestEntityTooLarge)
def _too_large(_e: RequestEntityTooLarge) -> tuple[Response, int]:
    return jsonify({"error": f"the request body is over {_config('CDS_HOOKS_MAX_BODY_BYTES')} bytes"}), 413


# --- who is calling ----------------------------------------------------------------------------------


class Caller:
    """An authenticated CDS client (issuer:subject) or an anonymous demo caller (writes nothing)."""

    def __init__(self, identity: str | None):
        self.identity = identity

    @property
    def anonymous(self) -> bool:
        return self.identity is None


_warned_anonymous: set[int] = set()


def _authorize() -> Caller:
    """Verify the bearer JWT (the CDS Hooks security model); anonymous only when explicitly allowed."""
    keys: dict[str, str] = _config("CDS_HOOKS_JWT_KEYS") or {}
    if not keys:
        if _config("CDS_HOOKS_ALLOW_ANONYMOUS") is True:
            if id(current_app) not in _warned_anonymous:
                _warned_anonymous.add(id(current_app))
                current_app.logger.warning(
                    "CDS Hooks: anonymous calls allowed (CDS_HOOKS_ALLOW_ANONYMOUS, demo only): cards are returned, "
                    "no case and no audit entry is written"
                )
            return Caller(None)
        raise HookError(401, "authentication required: this service accepts calls with a signed JWT only")
    import jwt

    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise HookError(401, "a bearer JWT is required")
    token = header.removeprefix("Bearer ").strip()
    base = _config("CDS_HOOKS_BASE_URL")
    if not base:
        current_app.logger.error("CDS Hooks: CDS_HOOKS_BASE_URL is not set, so no JWT audience can be checked")
        raise HookError(401, "JWT refused: the service has no configured audience")
    try:
        if jwt.get_unverified_header(token).get("alg") not in ALGORITHMS:
            raise HookError(401, f"JWT refused: the algorithm must be one of {', '.join(ALGORITHMS)}")
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        if not isinstance(issuer, str) or issuer not in keys:
            raise HookError(401, "JWT refused: unknown issuer")
        claims = jwt.decode(
            token,
            keys[issuer],
            algorithms=ALGORITHMS,
            audience=base.rstrip("/") + request.path,
            issuer=issuer,
            leeway=CLOCK_LEEWAY_S,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as e:
        current_app.logger.info("CDS Hooks: JWT refused: %s", e)
        raise HookError(401, "JWT refused") from None
    now = time.time()
    if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME_S or claims["exp"] > now + MAX_TOKEN_LIFETIME_S:
        raise HookError(401, "JWT refused: a token may live at most 5 minutes")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise HookError(401, "JWT refused: jti must be a text of at most 255 characters")
    _remember_token(issuer, jti, claims["exp"])
    return Caller(f"{issuer}:{claims.get('sub', '')}")


def _remember_token(issuer: str, jti: str, exp: float) -> None:
    """Store (issuer, jti) until the token expires; a second use is a replay and is refused."""
    now = datetime.now(UTC)
    key = hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()
    db.session.execute(delete(CdsTokenSeen).where(CdsTokenSeen.expires_at < now))
    db.session.add(
        CdsTokenSeen(key=key, expires_at=datetime.fromtimestamp(exp, UTC) + timedelta(seconds=CLOCK_LEEWAY_S))
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise HookError(401, "JWT refused: this token was already used (jti replay)") from None


# --- discovery and sources ---------------------------------------------------------------------------


@cds.route("/cds-services")
def discovery() -> Any:
    """The discovery document (it says so when the service runs without authentication)."""
    caller = _authorize()
    body: dict[str, Any] = {"services": [{"id": sid, **definition} for sid, definition in SERVICES.items()]}
    if caller.anonymous:
        body["extension"] = {
            "mgreview-authentication": "none: demo mode (CDS_HOOKS_ALLOW_ANONYMOUS); cards only, nothing recorded"
        }
    return jsonify(body)


@cds.route("/sources")
def sources() -> Any:
    """The ruleset's sources as full citations, one anchor per tag (cards link here)."""
    ruleset = evaluator().ruleset
    return render_template("sources.html", citations=citations(ruleset.citations), ruleset=ruleset)


# --- reading the request -----------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    """The JSON object of the request, bounded in size and depth; anything else is a 4xx with the reason."""
    limit = int(_config("CDS_HOOKS_MAX_BODY_BYTES"))
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    request.max_content_length = limit  # also bounds a body sent without Content-Length
    data = request.get_data(cache=False)
    try:
        body = json.loads(data)
    except RecursionError:
        raise HookError(400, f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # also UnicodeDecodeError
        raise HookError(400, f"the body is not JSON: {str(e)[:120]}") from None
    if _depth_over(body, MAX_JSON_DEPTH):
        raise HookError(400, f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise HookError(400, "expected a JSON object")
    return body


def _depth_over(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return False


def _object(value: Any, where: str, *, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise HookError(400, f"{where} must be a JSON object")
    return value


def _text(value: Any, where: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise HookError(400, f"{where} must be a non-empty string")
    return value


class HookRequest:
    """The parts of a hook request the service uses, checked; what it skipped, with the reason."""

    def __init__(self, body: dict[str, Any], service_id: str):
        expected = SERVICES[service_id]["hook"]
        if body.get("hook") != expected:
            raise HookError(400, f"expected a CDS Hooks request for hook {expected!r}")
        self.hook_instance = str(_text(body.get("hookInstance"), "hookInstance"))
        context = _object(body.get("context"), "context")
        patient_id = str(_text(context.get("patientId"), "context.patientId"))
        if not FHIR_ID.match(patient_id):
            raise HookError(400, "context.patientId is not a FHIR id (letters, digits, '-' and '.', at most 64)")
        self.patient_id = patient_id
        _text(context.get("userId"), "context.userId", required=False)
        selections = context.get("selections")
        if selections is not None and not (
            isinstance(selections, list) and all(isinstance(s, str) for s in selections)
        ):
            raise HookError(400, "context.selections must be a list of references")
        drafts = _object(context.get("draftOrders"), "context.draftOrders")
        if drafts.get("resourceType") != "Bundle":
            raise HookError(400, "context.draftOrders must be a FHIR Bundle")
        entries = drafts.get("entry") or []
        if not isinstance(entries, list):
            raise HookError(400, "context.draftOrders.entry must be a list")
        self.drafts = [
            _object(_object(e, f"context.draftOrders.entry[{i}]").get("resource"), f"draftOrders.entry[{i}].resource")
            for i, e in enumerate(entries)
        ]
        prefetch = _object(body.get("prefetch"), "prefetch", required=False)
        self.prefetch: dict[str, dict[str, Any] | None] = {}
        for key, value in prefetch.items():
            if key in PREFETCH:
                self.prefetch[key] = _object(value, f"prefetch.{key}", required=False) or None
        self.fhir_server = _text(body.get("fhirServer"), "fhirServer", required=False)
        authorization = _object(body.get("fhirAuthorization"), "fhirAuthorization", required=False)
        self.token = _text(authorization.get("access_token"), "fhirAuthorization.access_token", required=False)
        self.skipped: list[dict[str, str]] = [
            {"prefetch": key, "reason": "not a prefetch key of this service"} for key in prefetch if key not in PREFETCH
        ]


def _label(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"


def _lenient_medication_request(resource: dict[str, Any], notes: list[dict[str, str]]) -> dict[str, Any]:
    """A copy readable as R4 where the CDS Hooks library's own examples are not (each change reported).

    Its order-select example writes `doseAndRate` as one object instead of a list; its order-sign example
    puts `doseQuantity` / `doseRange` directly on the Dosage (the STU3 place). Both are read as R4 writes them.
    """
    out = dict(resource)
    lines = out.get("dosageInstruction")
    if isinstance(lines, list):
        fixed = []
        for line in lines:
            if isinstance(line, dict) and isinstance(line.get("doseAndRate"), dict):
                line = {**line, "doseAndRate": [line["doseAndRate"]]}
                notes.append({"resource": _label(resource), "reason": "doseAndRate object read as a one-item list"})
            stu3 = {k: line[k] for k in ("doseQuantity", "doseRange") if isinstance(line, dict) and k in line}
            if stu3 and "doseAndRate" not in line:
                line = {**{k: v for k, v in line.items() if k not in stu3}, "doseAndRate": [stu3]}
                notes.append(
                    {"resource": _label(resource), "reason": "Dosage.doseQuantity (STU3 place) read in doseAndRate"}
                )
            fixed.append(line)
        out["dosageInstruction"] = fixed
    return out


def _names_magnesium(resource: dict[str, Any]) -> bool:
    """A magnesium order as the engine reads one: by a magnesium RxNorm code of the ruleset, or by its text."""
    try:
        return fhir.draft_magnesium_order([{**resource, "status": "draft"}], ruleset=evaluator().ruleset) is not None
    except (AttributeError, TypeError):
        return False


def _draft_orders(hook: HookRequest) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The draft magnesium order and the other draft medication orders (read as medications to be taken)."""
    magnesium: dict[str, Any] | None = None
    others: list[dict[str, Any]] = []
    for resource in hook.drafts:
        if resource.get("resourceType") != "MedicationRequest":
            hook.skipped.append({"resource": _label(resource), "reason": "not a medication order"})
            continue
        resource = _lenient_medication_request(resource, hook.skipped)
        if magnesium is None and resource.get("status") == "draft" and _names_magnesium(resource):
            magnesium = resource
        else:
            # ordered in the same session: the patient will take it, so its interactions count
            others.append({**resource, "status": "active"} if resource.get("status") == "draft" else resource)
    return magnesium, others


def _patient_of(resource: dict[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("Patient/"):
            return str(ref["reference"]).removeprefix("Patient/")
    return None


def _collect(value: Any, where: str, hook: HookRequest) -> list[dict[str, Any]]:
    """Resources of one prefetch value (a resource or a searchset Bundle) that the service uses."""
    if not isinstance(value, dict):
        raise HookError(400, f"{where} must be a FHIR resource or Bundle")
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            raise HookError(400, f"{where}.entry must be a list")
        items = [_object(_object(e, f"{where}.entry[{i}]").get("resource") or {}, where) for i, e in enumerate(entries)]
    else:
        items = [value]
    out = []
    for resource in items:
        kind = resource.get("resourceType")
        if not resource:
            continue
        if kind not in USED_TYPES:
            hook.skipped.append({"resource": _label(resource), "reason": "not used by this service"})
        elif kind == "Patient" and resource.get("id") != hook.patient_id:
            raise HookError(400, f"{where}: the Patient is not context.patientId")
        elif (other := _patient_of(resource)) is not None and other != hook.patient_id:
            hook.skipped.append({"resource": _label(resource), "reason": "about another patient"})
        else:
            out.append(resource)
    return out


# --- reading the EHR's FHIR server -------------------------------------------------------------------


def _allowed_server(url: str) -> urllib.parse.SplitResult | None:
    """The parsed fhirServer when it is one of the configured EHR base URLs (https, or http on loopback)."""

    def key(text: str) -> tuple[str, str, int, str] | None:
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError:
            return None
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host or parts.username or parts.query or parts.fragment:
            return None
        if parts.scheme == "http" and host not in LOOPBACK:
            return None
        return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), parts.path.rstrip("/")

    wanted = key(url)
    allowed = {key(str(u)) for u in _config("CDS_HOOKS_FHIR_SERVERS") or []}
    return urllib.parse.urlsplit(url) if wanted is not None and wanted in allowed else None


class _Deadline:
    """One deadline and one byte budget for every FHIR read of a call."""

    def __init__(self, seconds: float, max_bytes: int):
        self.end = time.monotonic() + seconds
        self.bytes_left = max_bytes

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("prefetch deadline passed")
        return remaining


def _fetch(server: urllib.parse.SplitResult, token: str | None, query: str, deadline: _Deadline) -> Any:
    """GET one FHIR query; no redirects followed; the socket is cut when the deadline passes."""
    path = server.path.rstrip("/") + "/" + query
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    host, port = str(server.hostname), server.port
    conn: http.client.HTTPConnection
    if server.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=deadline.left(), context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline.left())
    watchdog = threading.Timer(max(deadline.left(), 0.001), _cut, (conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} (redirects are not followed)")
        chunks = []
        while True:
            if conn.sock is not None:
                conn.sock.settimeout(deadline.left())
            chunk = response.read1(65536)
            if not chunk:
                break
            deadline.bytes_left -= len(chunk)
            if deadline.bytes_left < 0:
                raise OSError("the FHIR server sent more than the byte budget")
            chunks.append(chunk)
        deadline.left()  # a read cut by the watchdog ends like a closed connection
        return json.loads(b"".join(chunks))
    finally:
        watchdog.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _render(template: str, patient_id: str) -> str:
    return template.replace("{{context.patientId}}", urllib.parse.quote(patient_id, safe=""))


def _bundle(hook: HookRequest, others: list[dict[str, Any]], draft: dict[str, Any]) -> dict[str, Any]:
    """One collection Bundle of what the service uses: prefetch (or the FHIR server) plus the draft orders."""
    resources: list[dict[str, Any]] = []
    missing = [key for key in PREFETCH if hook.prefetch.get(key) is None]
    server = _allowed_server(hook.fhir_server) if hook.fhir_server and missing else None
    if missing and hook.fhir_server and server is None:
        raise HookError(400, "fhirServer is not one of the EHR FHIR servers this service is configured to read")
    deadline = _Deadline(float(_config("CDS_HOOKS_FETCH_DEADLINE_S")), int(_config("CDS_HOOKS_MAX_FETCH_BYTES")))
    for key, template in PREFETCH.items():
        value = hook.prefetch.get(key)
        if value is None:
            if server is None:
                if key == "patient":
                    raise HookError(412, "the patient was neither prefetched nor readable from a FHIR server")
                continue  # missing data becomes explicit findings (e.g. RENAL_DATA_MISSING)
            try:
                value = _fetch(server, hook.token, _render(template, hook.patient_id), deadline)
            except TimeoutError:
                current_app.logger.warning("CDS Hooks: reading %s from the FHIR server passed the deadline", key)
                raise HookError(504, "the FHIR server did not answer in time") from None
            except (OSError, ValueError, http.client.HTTPException) as e:
                current_app.logger.warning("CDS Hooks: reading %s from the FHIR server failed: %s", key, e)
                raise HookError(502, "the FHIR server could not be read") from None
            if not isinstance(value, dict):
                current_app.logger.warning("CDS Hooks: the FHIR server's %s is not a JSON object", key)
                raise HookError(502, "the FHIR server could not be read")
        resources += _collect(value, f"prefetch.{key}" if key in hook.prefetch else key, hook)
    resources += others + [draft]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _as_of(draft: dict[str, Any]) -> date:
    """The order's date (ages are computed at it); a partial date is its first day; none: today."""
    authored = draft.get("authoredOn")
    if not authored:
        return datetime.now(UTC).date()
    text = str(authored)
    try:
        if re.fullmatch(r"\d{4}", text):
            return date(int(text), 1, 1)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            return date(int(text[:4]), int(text[5:]), 1)
        return fhir.parse_date(text)
    except ValueError:
        raise HookError(400, "the draft order's authoredOn is not a date") from None


# --- the hooks ---------------------------------------------------------------------------------------


def _service(service_id: str) -> None:
    if service_id not in SERVICES:
        raise HookError(404, "no such CDS service")


@cds.route("/cds-services/<service_id>", methods=["POST"])
def hook(service_id: str) -> Any:
    """order-select / order-sign: cards for a draft magnesium order, none for other orders."""
    caller = _authorize()
    _service(service_id)
    hook = HookRequest(_json_body(), service_id)
    draft, others = _draft_orders(hook)
    if draft is None:  # not a magnesium order: nothing to say, nothing fetched
        return jsonify(_response([], hook))
    as_of = _as_of(draft)
    bundle = _bundle(hook, others, draft)
    sources_url = url_for("cds.sources", _external=True)
    try:
        record = fhir.bundle_to_record(bundle, as_of=as_of, ruleset=evaluator().ruleset)
    except RecordError as e:
        reasons = [f"{err.field}: {err.reason}" for err in e.errors]
        if not any(err.field.startswith("Patient.deceased") for err in e.errors):
            raise HookError(400, "; ".join(reasons)) from None  # invalid FHIR: a malformed request
        # a valid record of a deceased patient: the prescriber is told on a card, never left with nothing
        card = cardmaker.not_checked_card(reasons, hook_instance=hook.hook_instance, sources_url=sources_url)
        return jsonify(_response([card], hook))
    except (ValueError, TypeError, AttributeError, KeyError) as e:  # e.g. a partial birthDate
        current_app.logger.warning("CDS Hooks: FHIR data could not be read: %r", e)
        raise HookError(400, "the FHIR data could not be read (a malformed date or value)") from None
    result = evaluator().evaluate(record).to_dict()
    if result["status"] != "ok":
        reasons = [f"{e['field']}: {e['reason']}" for e in result["errors"]]
        card = cardmaker.not_checked_card(reasons, hook_instance=hook.hook_instance, sources_url=sources_url)
        return jsonify(_response([card], hook))
    if result["plan"]["requires_physician"] and not caller.anonymous:
        # orders a physician must decide also reach the clinicians' worklist (idempotent: one case per record);
        # an anonymous (demo) call never writes a case or an audit entry
        workflow.import_records(
            [(1, record)],
            filename=f"cds-hooks {service_id} {hook.hook_instance}",
            actor=str(caller.identity),
            evaluator=evaluator(),
        )
    made = cardmaker.cards(
        result,
        hook_instance=hook.hook_instance,
        draft_order=draft,
        sources_url=sources_url,
        override_reasons=workflow.OVERRIDE_CODES,
        titles=evaluator().ruleset.raw.get("findings"),
    )
    return jsonify(_response(made, hook))


def _response(cards: list[dict[str, Any]], hook: HookRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"cards": cards}
    if hook.skipped:
        out["extension"] = {"mgreview-skipped": hook.skipped}
    return out


@cds.route("/cds-services/<service_id>/feedback", methods=["POST"])
def feedback(service_id: str) -> Any:
    """Record accepted and overridden cards, with the override reason, in the audit log."""
    caller = _authorize()
    _service(service_id)
    if caller.anonymous:
        raise HookError(401, "feedback is recorded only from an authenticated CDS client")
    body = _json_body()
    if not isinstance(body.get("feedback"), list) or not all(isinstance(i, dict) for i in body["feedback"]):
        raise HookError(400, 'expected {"feedback": [{...}, ...]}')
    try:
        workflow.record_cds_feedback(service_id, body["feedback"], actor=str(caller.identity))
    except workflow.WorkflowError as e:
        raise HookError(400, e.message) from None
    return jsonify({})
