"""Write every engine output of this checkout into one folder, to compare two checkouts byte for byte.

    python -m bench.outputs DIR          # then: diff -r DIR_BEFORE DIR_AFTER

Covers the bench records (one process and two workers, JSON and FHIR), the samples (JSONL and CSV, JSON and
FHIR), the Synthea bundles in ../shared/external/fhir, the scenario records of every shipped ruleset, and the
`rulesets diff` / `rulesets impact` reports. Everything goes through the CLI, so a refactor of the code
behind it is compared on what users get.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "external" / "fhir"
RULESETS = ROOT / "rulesets" / "magnesium"


def _make_records(n: int) -> list[str]:
    try:
        from bench.throughput import make_records
    except ImportError:  # an older checkout keeps the benchmark under tests/
        from bench.throughput import make_records  # type: ignore[no-redef]
    return make_records(n)


def _cli(out: Path, name: str, *args: str) -> None:
    """Run one CLI command; its stdout, stderr and exit code go to files named after it."""
    proc = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, cwd=ROOT, text=True)
    (out / f"{name}.stdout").write_text(proc.stdout, "utf-8")
    (out / f"{name}.exit").write_text(f"{proc.returncode}\n", "utf-8")


def main(out: Path) -> None:
    """Write all outputs into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    bench = inputs / "bench.jsonl"
    bench.write_text("\n".join(_make_records(20_000)) + "\n", "utf-8")
    scenarios = inputs / "scenarios.jsonl"
    with scenarios.open("w", encoding="utf-8") as f:
        for path in sorted(RULESETS.glob("v*.scenarios.json")):
            for s in json.loads(path.read_text("utf-8")):
                f.write(json.dumps(s["record"], ensure_ascii=False, sort_keys=True) + "\n")
    synthea = inputs / "synthea.ndjson"
    with synthea.open("w", encoding="utf-8") as f:
        for path in sorted(SYNTHEA.glob("*.json")):
            f.write(json.dumps(json.loads(path.read_text("utf-8"))) + "\n")
    jobs: list[tuple[str, list[str]]] = [
        ("bench", [str(bench)]),
        ("bench_w2", [str(bench), "--workers", "2"]),
        ("bench_fhir", [str(bench), "--format", "fhir"]),
        ("samples_jsonl", [str(ROOT / "samples" / "intake.jsonl")]),
        ("samples_csv", [str(ROOT / "samples" / "intake.csv")]),
        ("samples_fhir", [str(ROOT / "samples" / "intake.jsonl"), "--format", "fhir"]),
        ("synthea", [str(synthea)]),
        ("synthea_fhir", [str(synthea), "--format", "fhir"]),
    ]
    for ruleset in sorted(RULESETS.glob("v*[0-9].json")):
        jobs.append((f"scenarios_{ruleset.stem}", [str(scenarios), "--ruleset", str(ruleset)]))
        jobs.append((f"samples_{ruleset.stem}", [str(ROOT / "samples" / "intake.jsonl"), "--ruleset", str(ruleset)]))
    for name, args in jobs:
        result = out / f"{name}.jsonl"
        _cli(out, name, "evaluate", *args, "-o", str(result), "--rejects", str(out / f"{name}.rejects.jsonl"))
    v1, v2 = RULESETS / "v1.json", RULESETS / "v2.json"
    _cli(out, "diff_v1_v2", "rulesets", "diff", str(v1), str(v2))
    _cli(out, "impact_v1_v2", "rulesets", "impact", str(v1), str(v2), str(ROOT / "samples" / "intake.jsonl"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/outputs"))
