"""Load test of the production server: `python -m bench.load` (part of `make bench`; nothing asserts a time).

N simulated clinicians (BENCH_CLINICIANS, default 8, at most 32) sign in over loopback to `mgreview serve
--production` (gunicorn, BENCH_SERVER_WORKERS workers, default 2) on a throwaway PostgreSQL cluster, and for
BENCH_LOAD_SECONDS (default 20, at most 120) each opens the worklist, picks one of the first cases (so
clinicians collide on purpose), opens it and signs an approval. Then it reports decisions, conflicts, lost
updates (must be 0), audit entries of decisions (must equal decisions), the chain's verification, and p50/p95
page and decision times. It binds 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy

from tests.helpers.pg import Cluster

ROOT = Path(__file__).resolve().parent.parent
CLINICIANS = min(32, int(os.environ.get("BENCH_CLINICIANS", "8")))
SERVER_WORKERS = min(8, int(os.environ.get("BENCH_SERVER_WORKERS", "2")))
SECONDS = min(120.0, float(os.environ.get("BENCH_LOAD_SECONDS", "20")))
CASES = int(os.environ.get("BENCH_LOAD_CASES", "400"))
PASSWORD = "load-test-password"
MGREVIEW = [sys.executable, "-c", "from review_ui.cli import main; main()"]
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


@dataclass
class Tally:
    """What one simulated clinician did."""

    page_s: list[float] = field(default_factory=list)
    decide_s: list[float] = field(default_factory=list)
    signed: list[int] = field(default_factory=list)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _csrf(page: str) -> str:
    found = CSRF.search(page)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return html.unescape(found.group(1) or found.group(2))


class Clinician:
    """A browser-like client: a cookie jar, form posts with the CSRF token."""

    def __init__(self, base: str, username: str):
        self.base, self.username = base, username
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[str, float]:
        start = time.perf_counter()
        with self.opener.open(self.base + path, timeout=30) as response:
            body = response.read().decode("utf-8")
        return body, time.perf_counter() - start

    def post(self, path: str, data: dict[str, str]) -> tuple[str, float]:
        start = time.perf_counter()
        body = urllib.parse.urlencode(data).encode()
        with self.opener.open(self.base + path, data=body, timeout=30) as response:  # follows the redirect
            text = response.read().decode("utf-8")
        return text, time.perf_counter() - start

    def sign_in(self) -> None:
        page, _ = self.get("/login")
        after, _ = self.post("/login", {"csrf_token": _csrf(page), "username": self.username, "password": PASSWORD})
        if "Worklist" not in after:
            raise RuntimeError(f"{self.username} could not sign in")

    def work(self, until: float, tally: Tally) -> None:
        while time.perf_counter() < until:
            worklist, elapsed = self.get("/cases")
            tally.page_s.append(elapsed)
            ids = [int(i) for i in re.findall(r'href="/cases/(\d+)"', worklist)]
            if not ids:
                return
            case_id = random.choice(ids[:5])
            page, elapsed = self.get(f"/cases/{case_id}")
            tally.page_s.append(elapsed)
            version = re.search(r'id="expected_version" name="expected_version" type="hidden" value="(\d+)"', page)
            if version is None:
                continue  # decided since the worklist was read
            form = {"csrf_token": _csrf(page), "kind": "approve", "expected_version": version.group(1)}
            result, elapsed = self.post(f"/cases/{case_id}/decide", {**form, "password": PASSWORD})
            tally.decide_s.append(elapsed)
            if "Decision signed" in result:
                tally.signed.append(case_id)
            elif "nothing was overwritten" in result:
                tally.conflicts += 1
            else:
                tally.errors.append(f"case {case_id}: neither signed nor a conflict")


def _setup(url: str, env: dict[str, str]) -> None:
    subprocess.run([*MGREVIEW, "db", "upgrade"], env=env, check=True, capture_output=True)
    os.environ.update(env)
    from bench.throughput import make_records
    from review_ui import create_app, ruleset_versions, workflow

    app = create_app()
    with app.app_context():
        for n in range(CLINICIANS):
            workflow.add_user(f"clinician{n}", PASSWORD, "clinician", actor="bench")
        items = list(enumerate(make_records(CASES), start=1))
        workflow.import_records(items, filename="load", actor="bench", evaluator=ruleset_versions.active_evaluator())
        from review_ui.db import db

        db.engine.dispose()


def _report(url: str, tallies: list[Tally], elapsed: float) -> None:
    from audit import log
    from review_ui import create_app
    from review_ui.db import db
    from review_ui.models import Case, Decision

    signed = [case for t in tallies for case in t.signed]
    app = create_app()
    with app.app_context():
        decisions = db.session.query(Decision).count()
        per_case = db.session.execute(
            sqlalchemy.select(Decision.case_id, sqlalchemy.func.count()).group_by(Decision.case_id)
        ).all()
        decided = db.session.query(Case).filter(Case.status != "pending").count()
        entries = db.session.query(log.AuditEntry).filter(log.AuditEntry.action.like("decision.%")).count()
        verification = log.verify(db.session)
        db.engine.dispose()
    twice = sum(1 for _, n in per_case if n > 1)
    lost = abs(len(signed) - decisions) + twice + abs(decided - decisions) + (len(signed) - len(set(signed)))
    pages = sorted(s for t in tallies for s in t.page_s)
    decides = sorted(s for t in tallies for s in t.decide_s)
    errors = [e for t in tallies for e in t.errors]

    def pct(values: list[float], q: float) -> str:
        return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f} ms" if values else "-"

    print(f"load: {CLINICIANS} clinicians, gunicorn {SERVER_WORKERS} workers x 4 threads, PostgreSQL, {elapsed:.0f} s")
    print(
        f"  decisions signed: {len(signed)} ({len(signed) / elapsed:.1f}/s); conflicts (refused, nothing lost): "
        f"{sum(t.conflicts for t in tallies)}; errors: {len(errors)}"
    )
    print(f"  lost updates: {lost}; cases decided twice: {twice}")
    print(f"  audit entries of decisions: {entries} (decisions stored: {decisions}); {verification.message()}")
    print(
        f"  page time p50 {pct(pages, 0.5)} / p95 {pct(pages, 0.95)} over {len(pages)} pages; "
        f"decision p50 {pct(decides, 0.5)} / p95 {pct(decides, 0.95)}"
    )
    for error in errors[:5]:
        print(f"  error: {error}")


def main() -> None:
    """Start PostgreSQL and the production server on loopback, run the clinicians, report, stop everything."""
    cluster = Cluster()
    cluster.start()
    server = None
    try:
        admin = sqlalchemy.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text("CREATE DATABASE mgreview_load"))
        admin.dispose()
        url = cluster.url("mgreview_load")
        env = {
            **os.environ,
            "MGREVIEW_DATABASE_URL": url,
            "MGREVIEW_SECRET_KEY": "load-test-secret",
            "MGREVIEW_AUDIT_KEY": "load-test-audit-key-of-at-least-32-characters",
        }
        _setup(url, env)
        port = _free_port()
        command = [*MGREVIEW, "serve", "--production", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(SERVER_WORKERS)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the production server did not start") from None
                time.sleep(0.3)
        clinicians = [Clinician(base, f"clinician{n}") for n in range(CLINICIANS)]
        for clinician in clinicians:
            clinician.sign_in()
        tallies = [Tally() for _ in clinicians]
        start = time.perf_counter()
        until = start + SECONDS
        threads = [
            threading.Thread(target=c.work, args=(until, t), daemon=True)
            for c, t in zip(clinicians, tallies, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + 60)
        elapsed = time.perf_counter() - start
        server.terminate()
        server.wait(30)
        server = None
        _report(url, tallies, elapsed)
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        cluster.stop()


if __name__ == "__main__":
    main()
