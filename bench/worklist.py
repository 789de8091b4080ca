"""Worklist speed with many cases: `python -m bench.worklist` (part of `make bench`)."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from datetime import timedelta

from sqlalchemy import insert

from bench.throughput import make_records
from engine.evaluate import Evaluator
from review_ui import create_app, workflow
from review_ui.db import db
from review_ui.models import SEVERITY_RANK, Batch, Case, CaseFinding, utcnow

CASES = int(os.environ.get("BENCH_CASES", "100000"))


def main() -> None:
    """Fill a fresh SQLite database with CASES cases, then time worklist pages as a signed-in clinician."""
    folder = tempfile.mkdtemp(prefix="mgreview-worklist-")
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.db", "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False}
    )
    from flask_migrate import upgrade

    evaluator = Evaluator()
    results = [evaluator.evaluate(json.loads(line)).to_dict() for line in make_records(500)]
    results = [r for r in results if r["status"] == "ok"]
    with app.app_context():
        upgrade()
        workflow.add_user("bench", "bench-password-1", "clinician", actor="bench")
        batch = Batch(filename="bench", imported_by="bench")
        db.session.add(batch)
        db.session.flush()
        start, now = time.perf_counter(), utcnow()
        for offset in range(0, CASES, 5000):
            cases, findings = [], []
            for i in range(offset, min(offset + 5000, CASES)):
                r = results[i % len(results)]
                top = r["findings"][0]["severity"] if r["findings"] else "none"
                cases.append(
                    {
                        "id": i + 1,
                        "patient_ref": f"B{i:06d}",
                        "batch_id": batch.id,
                        "input_hash": f"{i:064d}",
                        "intake": {},
                        "result": r,
                        "highest_severity": top,
                        "severity_rank": SEVERITY_RANK[top],
                        "status": "pending" if i % 10 else "approved",
                        "ruleset_id": "magnesium",
                        "ruleset_version": 1,
                        "ruleset_sha256": r["ruleset"]["sha256"],
                        "created_at": now - timedelta(seconds=i),
                        "updated_at": now,
                        "version": 1,
                    }
                )
                findings += [
                    {
                        "case_id": i + 1,
                        "finding_id": f["id"],
                        "severity": f["severity"],
                        "rank": SEVERITY_RANK[f["severity"]],
                    }
                    for f in r["findings"]
                ]
            db.session.execute(insert(Case), cases)
            db.session.execute(insert(CaseFinding), findings)
        db.session.commit()
        print(f"{CASES} cases inserted in {time.perf_counter() - start:.1f} s")
    client = app.test_client()
    client.post("/login", data={"username": "bench", "password": "bench-password-1"})
    for label, url in [
        ("first page", "/cases"),
        ("page 500", "/cases?page=500"),
        ("finding filter", "/cases?finding=PPI_LONG_TERM"),
        ("severity filter", "/cases?severity=major"),
        ("patient search", "/cases?q=B0999"),
        ("all statuses", "/cases?status="),
    ]:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        print(f"worklist {label:16} median {statistics.median(times):7.1f} ms")


if __name__ == "__main__":
    main()
