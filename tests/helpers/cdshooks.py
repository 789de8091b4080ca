"""Helpers for the CDS Hooks tests and benchmark: Synthea data as prefetch, hook requests, signed JWTs,
and small loopback servers (a fake EHR FHIR server, one that trickles, one that redirects)."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from tests.helpers import EXTERNAL

EXAMPLES = EXTERNAL / "cdshooks" / "examples"
ISSUER = "https://ehr.example/fhir"
BASE_URL = "http://localhost"  # the Flask test client's base: CDS_HOOKS_BASE_URL in the tests


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text("utf-8"))


@cache
def _synthea(name: str) -> list[dict[str, Any]]:
    data = json.loads(next((EXTERNAL / "fhir").glob(f"{name}*.json")).read_text("utf-8"))
    return [e["resource"] for e in data["entry"]]


def synthea(name: str) -> list[dict[str, Any]]:
    """The resources of one Synthea bundle (a fresh copy)."""
    return copy.deepcopy(_synthea(name))


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def prefetch_from(resources: list[dict[str, Any]]) -> dict[str, Any]:
    by_type = lambda t: [r for r in resources if r["resourceType"] == t]  # noqa: E731
    return {
        "patient": by_type("Patient")[0],
        "labs": searchset(by_type("Observation")),
        "medicationRequests": searchset([r for r in by_type("MedicationRequest") if r["status"] == "active"]),
        "medicationStatements": searchset([]),
        "conditions": searchset(by_type("Condition")),
    }


def magnesium_order(
    patient_id: str = "x",
    dose_mg: float = 200,
    per_day: int = 2,
    text: str = "Magnesium citrate (elemental) oral tablet",
) -> dict[str, Any]:
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


def hook_request(
    resources: list[dict[str, Any]], order: dict[str, Any], hook: str = "order-select", prefetch: bool = True
) -> dict[str, Any]:
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    body: dict[str, Any] = {
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


# --- signed JWTs ------------------------------------------------------------------------------------


@cache
def rsa_key() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode()


@cache
def ec_key() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode()


def token(
    audience: str,
    *,
    key: Any = None,
    issuer: str = ISSUER,
    algorithm: str = "RS384",
    lifetime: int = 300,
    **claims: Any,
) -> str:
    import jwt

    now = int(time.time())
    payload = {
        "iss": issuer,
        "aud": audience,
        "exp": now + lifetime,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sub": "client",
        **claims,
    }
    return jwt.encode(payload, key if key is not None else rsa_key()[0], algorithm=algorithm, headers={"kid": "k1"})


def configure_jwt(app: Any, base_url: str = BASE_URL) -> None:
    app.config["CDS_HOOKS_JWT_KEYS"] = {ISSUER: rsa_key()[1]}
    app.config["CDS_HOOKS_BASE_URL"] = base_url


class EHR:
    """A CDS client: every call with a fresh signed JWT for the endpoint it calls."""

    def __init__(self, client: Any, base_url: str = BASE_URL):
        self.client, self.base_url = client, base_url

    def auth(self, path: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(self.base_url + path)}"}

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers={**self.auth(path), **kwargs.pop("headers", {})}, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers={**self.auth(path), **kwargs.pop("headers", {})}, **kwargs)


# --- loopback servers -------------------------------------------------------------------------------


@contextmanager
def fake_fhir_server(resources: list[dict[str, Any]]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A FHIR server on 127.0.0.1 answering the service's prefetch queries; yields (base URL, requests seen)."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    seen: list[tuple[str, str]] = []
    prefetch = prefetch_from(resources)
    kinds = {
        "Observation": "labs",
        "MedicationRequest": "medicationRequests",
        "MedicationStatement": "medicationStatements",
        "Condition": "conditions",
    }

    @Request.application
    def app(request: Request) -> Response:
        seen.append((request.full_path, request.headers.get("Authorization", "")))
        kind = request.path.removeprefix("/fhir/").split("/")[0]
        if kind == "Patient":
            body = prefetch["patient"] if request.path.endswith("/" + prefetch["patient"]["id"]) else None
        else:
            body = prefetch.get(kinds.get(kind, ""))
        if body is None:
            return Response("not found", status=404)
        return Response(json.dumps(body), content_type="application/fhir+json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir", seen
    finally:
        server.shutdown()


@contextmanager
def raw_server(handler: Callable[[socket.socket], None]) -> Iterator[tuple[str, list[bytes]]]:
    """A bare TCP server on 127.0.0.1 running `handler(conn)` per connection; yields (base URL, requests)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    requests: list[bytes] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                requests.append(conn.recv(65536))
                handler(conn)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir", requests
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def trickle(every_s: float, stop_after_s: float = 30) -> Callable[[socket.socket], None]:
    """A handler that sends a valid response head, then one byte of body every `every_s` seconds."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n")
        end = time.monotonic() + stop_after_s
        while time.monotonic() < end:
            conn.sendall(b" ")
            time.sleep(every_s)

    return handler


def respond(status: str, headers: dict[str, str], body: bytes) -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": str(len(body))}.items())
        conn.sendall(f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body)

    return handler
