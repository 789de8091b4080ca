"""CDS Hooks under concurrent load: `python -m bench.cdshooks` (part of `make bench`; nothing asserts a time).

The review app is served by werkzeug's threaded server on 127.0.0.1 (a migrated SQLite database in a temp
folder, or PostgreSQL with BENCH_CDS_DB=postgresql); BENCH_CDS_CLIENTS threads (default 8) each send
BENCH_CDS_CALLS order-sign calls (default 25) over loopback HTTP, every call with its own signed RS384 JWT
(made before the clock starts). Patients alternate between Synthea Martina (eGFR 26.7: contraindicated,
the order also becomes a worklist case) and Trey (interactions, a dose update), all data prefetched.
Prints p50 / p95 / p99 / max of the call time, calls per second and any non-200 answers.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from typing import Any

from werkzeug.serving import make_server

from review_ui import create_app
from tests.helpers.cdshooks import configure_jwt, hook_request, magnesium_order, synthea, token

CLIENTS = int(os.environ.get("BENCH_CDS_CLIENTS", "8"))
CALLS = int(os.environ.get("BENCH_CDS_CALLS", "25"))
PATH = "/cds-services/mgreview-order-sign"


def _database() -> tuple[str, Any]:
    if os.environ.get("BENCH_CDS_DB") == "postgresql":
        from tests.helpers.pg import Cluster

        cluster = Cluster()
        cluster.start()
        return cluster.url(), cluster
    folder = tempfile.mkdtemp(prefix="mgreview-cds-bench-")
    return f"sqlite:///{folder}/bench.db", None


def main() -> None:
    url, cluster = _database()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    configure_jwt(app, base_url=base)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bodies = []
    for name, dose in (("Martina", 200), ("Trey", 250)):
        request = hook_request(synthea(name), magnesium_order("x", dose, 2), hook="order-sign")
        bodies.append(request)
    warm = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=120)
    for body in bodies:  # compile the ruleset and register it before timing
        warm.request(
            "POST",
            PATH,
            json.dumps(body),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token(base + PATH)}"},
        )
        warm.getresponse().read()
    jobs = [
        [
            (json.dumps({**bodies[(c + i) % 2], "hookInstance": f"bench-{c}-{i}"}), token(base + PATH))
            for i in range(CALLS)
        ]
        for c in range(CLIENTS)
    ]
    times: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(calls: list[tuple[str, str]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=120)
        barrier.wait()
        for body, jwt_text in calls:
            start = time.perf_counter()
            conn.request(
                "POST", PATH, body, {"Content-Type": "application/json", "Authorization": f"Bearer {jwt_text}"}
            )
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            with lock:
                times.append(elapsed)
                if response.status != 200:
                    failures.append(response.status)

    threads = [threading.Thread(target=client, args=(job,)) for job in jobs]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    server.shutdown()
    if cluster is not None:
        cluster.stop()
    ordered = sorted(times)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    print(
        f"CDS Hooks order-sign, {CLIENTS} concurrent clients x {CALLS} calls on loopback "
        f"({'PostgreSQL' if cluster else 'SQLite'}, werkzeug threaded): "
        f"p50 {pct(0.50):.0f} ms, p95 {pct(0.95):.0f} ms, p99 {pct(0.99):.0f} ms, max {ordered[-1] * 1000:.0f} ms, "
        f"mean {statistics.mean(times) * 1000:.0f} ms, {len(times) / wall:.1f} calls/s, "
        f"non-200: {len(failures)} {sorted(set(failures))}"
    )


if __name__ == "__main__":
    main()
