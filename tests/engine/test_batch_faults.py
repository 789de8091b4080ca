"""Batch faults at the reading and writing edge: undecodable lines, files that are not text, disk full, resume."""

import json

import pytest

from tests.helpers import ROOT, lines, mgreview, record

SAMPLE = ROOT / "samples" / "intake.jsonl"


def jsonl(n):
    return [json.dumps(record(id=f"R{i}", age_years=20 + i % 60)).encode() for i in range(1, n + 1)]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_latin1_byte_is_a_reject_naming_its_line_and_the_batch_goes_on(tmp_path, workers):
    rows = jsonl(601)
    rows[300] = rows[300].replace(b'"female"', b'"f\xe9male"')  # one Latin-1 byte at line 301
    column = rows[300].index(b"\xe9") + 1
    src, out, rej = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    src.write_bytes(b"\n".join(rows) + b"\n")
    proc = mgreview("evaluate", str(src), "-o", str(out), "--rejects", str(rej), "--workers", str(workers))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    results, rejects = lines(out), lines(rej)
    assert (len(results), len(rejects)) == (600, 1)
    assert rejects[0]["line"] == 301 and 301 not in {r["line"] for r in results}
    assert rejects[0]["errors"] == [
        {"field": "line", "reason": f"not valid UTF-8: byte 0xe9 at column {column} (save the file as UTF-8)"}
    ]
    assert "f\ufffdmale" in rejects[0]["input"]
    assert "records: 601  ok: 600  rejected: 1" in proc.stderr


@pytest.mark.parametrize(
    "name, data, message",
    [
        (
            "in.jsonl",
            "\n".join(r.decode() for r in jsonl(3)).encode("utf-16"),
            "the file is UTF-16 text; save it as UTF-8",
        ),
        ("in.csv", "id,age_years\nA,40\n".encode("utf-16"), "the file is UTF-16 text"),
        (
            "in.jsonl",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
            "the file is binary (it holds NUL bytes)",
        ),
    ],
)
def test_a_file_that_is_not_text_is_one_clear_error(tmp_path, name, data, message):
    src, out = tmp_path / name, tmp_path / "out.jsonl"
    src.write_bytes(data)
    proc = mgreview("evaluate", str(src), "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"Error: {name}: {message}")


def test_garbage_csv_becomes_rejects_not_a_traceback(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    huge = "x" * 200_000  # over the csv module's field limit
    src.write_bytes(f'id,age_years\nA,40\n"{huge}",1\n'.encode() + b'\xff\xfe,3\n;;;"",\n')
    proc = mgreview("evaluate", str(src), "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    results = lines(out)
    assert [r["status"] for r in results] == ["ok", "rejected", "rejected", "rejected"]
    reasons = [e["reason"] for r in results[1:] for e in r["errors"]]
    assert any("field larger than field limit" in reason for reason in reasons)
    assert any(reason.startswith("not valid UTF-8: byte 0xff") for reason in reasons)


def test_a_utf8_bom_is_not_a_reject(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + b"\n".join(jsonl(2)) + b"\n")
    proc = mgreview("evaluate", str(src), "-o", str(out))
    assert proc.returncode == 0 and [r["status"] for r in lines(out)] == ["ok", "ok"]


def test_disk_full_is_one_clear_message(tmp_path):
    proc = mgreview("evaluate", str(SAMPLE), "-o", "/dev/full")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "Error: cannot write /dev/full: No space left on device; 0 records were written before it, "
        "free the space and run again with --resume to finish"
    )


def test_resume_finishes_a_batch_stopped_by_a_full_disk(tmp_path):
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    stopped = mgreview("evaluate", str(SAMPLE), "-o", str(out), "--rejects", "/dev/full")
    assert stopped.returncode == 2 and "cannot write /dev/full" in stopped.stderr
    written = len(lines(out))
    assert 0 < written <= 60
    resumed = mgreview("evaluate", str(SAMPLE), "-o", str(out), "--rejects", str(rej), "--resume")
    assert resumed.returncode == 1 and f"resuming: {written} records already done" in resumed.stderr
    done = [r["line"] for r in lines(out)] + [r["line"] for r in lines(rej)]
    records = [n for n, text in enumerate(SAMPLE.read_text("utf-8").splitlines(), 1) if text.strip()]
    assert sorted(done) == records and len(lines(rej)) == 4
