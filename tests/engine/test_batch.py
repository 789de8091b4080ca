"""The batch CLI end to end: nothing lost, order kept, parallel equals serial, clear summary."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import batch
from tests.helpers import ROOT, lines, mgreview, record

SAMPLE = ROOT / "samples" / "intake.jsonl"


def generated_items(n, broken_line=None, prefix="G"):
    """(line, JSON text) items of varied records; one line broken JSON when asked."""
    meds = [["omeprazole"], ["doxycyclin 100 mg"], ["Zyxorin"], []]
    items = [
        (
            i + 1,
            json.dumps(
                record(id=f"{prefix}{i}", age_years=1 + i % 90, egfr_ml_min_1_73m2=5 + i % 100, medications=meds[i % 4])
            ),
        )
        for i in range(n)
    ]
    if broken_line:
        items[broken_line - 1] = (broken_line, "{broken json")
    return items


def test_sample_file_records_in_equal_results_plus_rejects(tmp_path):
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    proc = mgreview("evaluate", str(SAMPLE), "-o", str(out), "--rejects", str(rej))
    records_in = sum(1 for line in SAMPLE.read_text("utf-8").splitlines() if line.strip())
    results, rejects = lines(out), lines(rej)
    assert len(results) + len(rejects) == records_in
    assert rejects, "the sample holds malformed records on purpose"
    assert proc.returncode == 1  # any rejected record -> exit status 1
    assert f"records: {records_in}  ok: {len(results)}  rejected: {len(rejects)}" in proc.stderr
    assert "findings by severity: contraindicated" in proc.stderr
    assert all(r["status"] == "ok" for r in results)
    assert all(r["status"] == "rejected" and r["errors"] and "line" in r for r in rejects)


def test_parallel_output_equals_single_process_output(tmp_path):
    items = generated_items(1200, broken_line=18)
    serial, parallel = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
    with serial.open("wb") as out:
        s1 = batch.run(items, out, workers=1, progress=False)
    with parallel.open("wb") as out:
        s2 = batch.run(items, out, workers=2, progress=False)
    assert serial.read_bytes() == parallel.read_bytes()
    assert (s1.records, s1.ok, s1.rejected) == (s2.records, s2.ok, s2.rejected) == (1200, 1199, 1)


def test_workers_option_on_the_cli_keeps_order(tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    mgreview("evaluate", str(SAMPLE), "-o", str(one))
    mgreview("evaluate", str(SAMPLE), "-o", str(two), "--workers", "2")
    assert one.read_bytes() == two.read_bytes()


def test_invalid_json_line_is_a_reject_that_names_the_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(record(id="A")) + "\n\nnot json\n" + json.dumps(record(id="B")) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    proc = mgreview("evaluate", str(src), "-o", str(out))
    got = lines(out)
    assert [r.get("record_id") for r in got] == ["A", None, "B"]
    assert got[1]["line"] == 3 and got[1]["errors"][0]["field"] == "line"
    assert proc.returncode == 1


def test_csv_input_matches_jsonl_input(tmp_path):
    rec = record(
        id="C1",
        medications=["omeprazol 20 mg", "Doxycyclin"],
        conditions=["hartfalen"],
        serum_magnesium={"value": 0.7, "unit": "mmol/L", "upper_limit": 1.0},
    )
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps(rec) + "\n", "utf-8")
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "id",
                "age_years",
                "sex",
                "egfr_ml_min_1_73m2",
                "serum_magnesium.value",
                "serum_magnesium.unit",
                "serum_magnesium.upper_limit",
                "medications",
                "conditions",
                "symptoms",
                "supplement.form",
                "supplement.dose_mg",
                "supplement.dose_basis",
                "jurisdiction",
                "pregnant",
            ]
        )
        w.writerow(
            [
                "C1",
                "45",
                "female",
                "95",
                "0,7",
                "mmol/L",
                "1.0",
                "omeprazol 20 mg | Doxycyclin",
                "hartfalen",
                "",
                "citrate",
                "200",
                "elemental",
                "US",
                "",
            ]
        )
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    mgreview("evaluate", str(jsonl), "-o", str(a))
    mgreview("evaluate", str(src), "-o", str(b))
    ra, rb = lines(a)[0], lines(b)[0]
    ra.pop("line"), rb.pop("line")
    assert ra == rb


def test_csv_bad_number_is_rejected_with_field(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,age_years,sex\nX1,forty,female\n", "utf-8")
    out = tmp_path / "out.jsonl"
    mgreview("evaluate", str(src), "-o", str(out))
    (result,) = lines(out)
    assert result["errors"][0] == {"field": "age_years", "reason": "expected a number", "value": "forty"}


def test_jurisdiction_option_sets_the_default(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(record(id="J", jurisdiction=None)) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    mgreview("evaluate", str(src), "-o", str(out), "--jurisdiction", "US")
    assert lines(out)[0]["plan"]["max_elemental_mg_per_day"] == 350
    mgreview("evaluate", str(src), "-o", str(out), "--jurisdiction", "EU")
    assert lines(out)[0]["plan"]["max_elemental_mg_per_day"] == 250


def test_jurisdiction_default_from_environment(tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(record(id="J", jurisdiction=None)) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("MGREVIEW_JURISDICTION", "US")
    mgreview("evaluate", str(src), "-o", str(out))
    assert lines(out)[0]["plan"]["max_elemental_mg_per_day"] == 350


def test_rulesets_check_command_passes_and_fails(tmp_path):
    ok = mgreview("rulesets", "check")
    assert ok.returncode == 0 and ": ok (" in ok.stdout
    bad = tmp_path / "magnesium" / "v9.json"
    bad.parent.mkdir()
    doc = json.loads((ROOT / "rulesets" / "magnesium" / "v1.json").read_text("utf-8"))
    doc["status"] = "draft"
    doc["rules"][0]["when"][0]["where"][0][0] = "age_yrs"
    bad.write_text(json.dumps(doc), "utf-8")
    proc = mgreview("rulesets", "check", str(bad))
    assert proc.returncode == 1
    assert "unknown fact patient.age_yrs (did you mean 'age_years'?)" in proc.stderr


@pytest.mark.parametrize("missing", ["nope.jsonl"])
def test_missing_input_file_is_a_clear_error(missing):
    proc = mgreview("evaluate", missing)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def _big_input(path, n):
    with path.open("w") as f:
        for i in range(n):
            if i % 997 == 5:
                f.write("{not json\n")
            else:
                rec = record(
                    id=f"K{i}",
                    age_years=1 + i % 90,
                    egfr_ml_min_1_73m2=5 + i % 100,
                    medications=[["omeprazole"], ["doxycyclin"], []][i % 3],
                )
                f.write(json.dumps(rec) + "\n")


def _processes_with(argument):
    """Pids of live processes whose command line holds `argument`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and argument.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_batch_resumes_with_every_record_exactly_once(tmp_path, workers):
    import signal
    import time

    src, n = tmp_path / "in.jsonl", 12000
    _big_input(src, n)
    full_out, full_rej = tmp_path / "full.jsonl", tmp_path / "full-rej.jsonl"
    mgreview("evaluate", str(src), "-o", str(full_out), "--rejects", str(full_rej))
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    args = [
        sys.executable,
        "-m",
        "engine",
        "evaluate",
        str(src),
        "-o",
        str(out),
        "--rejects",
        str(rej),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 200_000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone = time.monotonic() + 10
    while time.monotonic() < gone and _processes_with(str(src)):
        time.sleep(0.1)
    assert not _processes_with(str(src)), "workers of the killed batch must exit with it"
    written = out.read_bytes()
    assert 0 < written.count(b"\n") < n, "the kill must land mid-batch"
    with out.open("ab") as f:
        f.write(b'{"record_id": "torn')  # what a kill in the middle of a write leaves behind
    resumed = mgreview(
        "evaluate", str(src), "-o", str(out), "--rejects", str(rej), "--resume", "--workers", str(workers)
    )
    assert "resuming:" in resumed.stderr
    lines_done = [json.loads(line)["line"] for p in (out, rej) for line in p.read_text().splitlines()]
    assert len(lines_done) == len(set(lines_done)) == n  # records in = results + rejects, no duplicates
    assert out.read_bytes() == full_out.read_bytes()
    assert rej.read_bytes() == full_rej.read_bytes()


def test_resume_refuses_a_foreign_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(record(id="A")) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("hello\n", "utf-8")
    proc = mgreview("evaluate", str(src), "-o", str(out), "--resume")
    assert proc.returncode == 2 and "cannot resume" in proc.stderr


def test_dask_local_cluster_gives_the_same_results_in_the_same_order(tmp_path):
    from distributed import LocalCluster

    from engine import distributed

    items = generated_items(2500, broken_line=100)
    local = tmp_path / "local.jsonl"
    with local.open("wb") as out:
        batch.run(items, out, workers=1, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        lines = [
            line for _, line, _ in distributed.results(items, cluster.scheduler_address, None, None, partition_size=300)
        ]
    assert b"\n".join(lines) + b"\n" == local.read_bytes()


@pytest.mark.parametrize("suffix", [".html", ".png"])
def test_report_renders_counts_and_plots(tmp_path, suffix):
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    mgreview("evaluate", str(SAMPLE), "-o", str(out), "--rejects", str(rej))
    target = tmp_path / f"report{suffix}"
    proc = mgreview("report", str(out), str(rej), "-o", str(target))
    assert proc.returncode == 0 and "64 records, 60 evaluated, 4 rejected" in proc.stdout
    data = target.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        text = data.decode()
        assert "data:image/png;base64," in text and "RENAL_SEVERE" in text and "expected a number" in text


def test_report_reads_past_blank_lines(tmp_path):
    out = tmp_path / "out.jsonl"
    mgreview("evaluate", str(SAMPLE), "-o", str(out))
    lines = out.read_text().splitlines()
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", "utf-8")
    proc = mgreview("report", str(spaced), "-o", str(tmp_path / "r.png"))
    assert "64 records" in proc.stdout


def test_report_names_a_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"status": "rejected", "errors": []}\nnot json\n', "utf-8")
    proc = mgreview("report", str(bad), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 1 and "line 2 is not JSON" in proc.stderr
    bad.write_text('{"status": "ok"}\n', "utf-8")
    proc = mgreview("report", str(bad), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 1 and "line 1 is not an mgreview result" in proc.stderr
