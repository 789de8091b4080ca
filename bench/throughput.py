"""`make bench`: throughput, latency and memory of the engine, measured in one run on the same records.

(a) the full `mgreview evaluate` pipeline (JSON text in, JSON line out) in one process;
(b) the project's compiled ruleset run raw through durable_rules on already-normalised facts;
(c) the reference toy of ../shared/engine/toy_bench (raw durable_rules, 31 rules, no parsing, no output);
and the full pipeline with one and with two worker processes.
Prints medians of REPEATS interleaved runs with their spread (min-max), the ratios a/b, a/c and two/one
workers, p50/p99 of one in-process evaluation, and RSS growth over RSS_RECORDS evaluations. Every rate
is given by wall clock and by CPU time: on a shared machine other processes slow the first, not the second.
Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from engine import batch
from engine.evaluate import Evaluator
from engine.facts import parse

RECORDS = int(os.environ.get("BENCH_RECORDS", "20000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
RSS_RECORDS = int(os.environ.get("BENCH_RSS_RECORDS", "200000"))
ROOT = Path(__file__).resolve().parents[1]
MEDS = [
    "Omeprazol 20 mg 1dd",
    "Doxycyclin 100 mg",
    "levotiroxine 0,1 mg",
    "furosemide 40 mg",
    "metformine 500 mg",
    "Lanoxin 0,125 mg",
    "spironolactone 25 mg",
    "atorvastatine 20 mg",
    "Zyxorin 5 mg",
    "Biktarvy",
]
CONDITIONS = ["hartfalen", "chronische nierschade", "diabetes", "alcoholisme", "migraine", "reflux"]
SYMPTOMS = ["spierkrampen", "diarree", "vermoeidheid", "hoofdpijn"]


def make_records(n: int, seed: int = 7) -> list[str]:
    """Deterministic synthetic intake records as JSON lines."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = {
            "id": f"B{i}",
            "age_years": rng.choice([0.5, 2, 6, 12]) if rng.random() < 0.05 else rng.randint(18, 95),
            "sex": rng.choice(["female", "male"]),
            "jurisdiction": rng.choice(["US", "EU"]),
            "medications": rng.sample(MEDS, rng.randint(0, 4)),
            "conditions": rng.sample(CONDITIONS, rng.randint(0, 2)),
            "symptoms": rng.sample(SYMPTOMS, rng.randint(0, 1)),
            "supplement": {
                "form": rng.choice(["citrate", "oxide", "glycinate"]),
                "dose_mg": rng.choice([100, 250, 400]),
                "dose_basis": rng.choice(["elemental", "salt"]),
            },
        }
        if rng.random() < 0.8:
            rec["egfr_ml_min_1_73m2"] = round(rng.uniform(5, 120), 2)
        if rng.random() < 0.7:
            rec["serum_magnesium"] = {"value": round(rng.uniform(0.3, 2.0), 3), "unit": "mmol/L"}
        out.append(json.dumps(rec))
    return out


def rate(n: int, seconds: float) -> float:
    return n / seconds


def cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (the batch's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Clock:
    """Wall-clock and CPU seconds of a block: records/s by either (a shared machine slows the first)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_s() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        return rate(n, self.wall), rate(n, self.cpu)


def full_pipeline(lines: list[str], workers: int) -> tuple[float, float]:
    items = list(enumerate(lines, start=1))
    with Clock() as clock:
        batch.run(items, io.BytesIO(), workers=workers, progress=False)
    return clock.rates(len(items))


def raw_durable(evaluator: Evaluator, lines: list[str]) -> tuple[float, float]:
    facts = []
    for line in lines:
        intake = parse(
            json.loads(line),
            evaluator.ruleset,
            evaluator.medications,
            evaluator.concepts,
            evaluator.forms,
            evaluator.default_jurisdiction,
        )
        one = [intake.patient, *(d.fact() for d in intake.drugs)]
        one += [c.fact() for r in intake.readings for c in r.concepts]
        facts.append(one)
    with Clock() as clock:
        for one in facts:
            evaluator.compiled.evaluate(one)
    return clock.rates(len(facts))


def latencies_us(evaluator: Evaluator, lines: list[str]) -> tuple[float, float, float, float]:
    """p50 and p99 of one evaluation, wall clock and this thread's CPU time (which excludes the time the
    thread waited for a core: on a shared machine the wall p99 is mostly other processes' work)."""
    records = [json.loads(line) for line in lines]
    wall, cpu = [], []
    for rec in records:
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        evaluator.evaluate(rec)
        cpu.append((time.thread_time_ns() - start_cpu) / 1000)
        wall.append((time.perf_counter_ns() - start) / 1000)
    wall.sort()
    cpu.sort()
    p50, p99 = len(wall) // 2, int(len(wall) * 0.99)
    return wall[p50], wall[p99], cpu[p50], cpu[p99]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_growth(evaluator: Evaluator, lines: list[str], total: int) -> tuple[float, float]:
    for line in lines[:2000]:  # warm up caches and the allocator
        evaluator.evaluate(json.loads(line))
    before = rss_mb()
    done = 0
    while done < total:
        for line in lines:
            evaluator.evaluate(json.loads(line))
            done += 1
            if done >= total:
                break
    return before, rss_mb()


def shared_dir() -> Path | None:
    """../shared beside the checkout; for a git worktree, beside its main checkout too."""
    candidates = [ROOT.parent / "shared"]
    git = ROOT / ".git"
    if git.is_file() and git.read_text("utf-8").startswith("gitdir:"):  # .../main/.git/worktrees/<name>
        common = Path(git.read_text("utf-8").split(":", 1)[1].strip()).parents[1]
        candidates.append(common.parent.parent / "shared")
    return next((c for c in candidates if (c / "engine" / "toy_bench").is_dir()), None)


def load_toy(n: int) -> tuple[Any, list[Any]] | None:
    """The toy's DurableRunner and n of its patients, or None when ../shared/engine/toy_bench is absent."""
    shared = shared_dir()
    if shared is None:
        return None
    sys.path.insert(0, str(shared / "engine" / "toy_bench"))
    import engines  # type: ignore[import-not-found]
    import mgrules  # type: ignore[import-not-found]

    return engines.DurableRunner(ruleset_name="toy"), mgrules.make_patients(n)


def toy(runner: Any, patients: list[Any]) -> tuple[float, float]:
    with Clock() as clock:
        for p in patients:
            runner.evaluate(p)
    return clock.rates(len(patients))


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


def report(by: str, runs: dict[str, list[float]], cpu: bool) -> None:
    """Medians (min-max) of the rates and of the ratios taken run by run."""

    def line(label: str, values: list[float], unit: str = "records/s", digits: int = 0, note: str = "") -> None:
        median = statistics.median(values)
        print(f"{label:40s} {median:8.{digits}f} {unit}  ({min(values):.{digits}f}-{max(values):.{digits}f}){note}")

    def ratios(x: str, y: str, factor: float = 1.0) -> list[float]:
        return [factor * p / q for p, q in zip(runs[x], runs[y], strict=True)]

    print(f"-- by {by}" + (" (records per CPU-second of the process and its workers)" if cpu else ""))
    line("(a) full pipeline, 1 process", runs["a"])
    line("(b) own ruleset, raw durable_rules", runs["b"])
    if runs["c"]:
        line("(c) reference toy, raw durable_rules", runs["c"])
    else:
        print("(c) reference toy: skipped, ../shared/engine/toy_bench is not beside the checkout")
    line("    full pipeline, 1 worker", runs["one"])
    line("    full pipeline, 2 workers", runs["two"])
    line("ratio a/b", ratios("a", "b"), "", 2)
    if runs["c"]:
        line("ratio a/c", ratios("a", "c"), "", 2, "   (target >= 0.6)")
    if cpu:  # two workers on two free cores: at most 2 x their CPU rate
        line(
            "ratio 2 workers / 1 worker, cores free", ratios("two", "one", 2.0), "", 2, "   (2 x CPU rate of 2 / of 1)"
        )
    else:
        line("ratio 2 workers / 1 worker", ratios("two", "one"), "", 2, "   (target >= 1.8)")


def main() -> None:
    print(
        f"mgreview bench: {RECORDS} records, {REPEATS} interleaved runs each (medians, min-max), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    lines = make_records(RECORDS)
    evaluator = Evaluator()
    the_toy = load_toy(RECORDS)
    runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": [], "one": [], "two": []}
    for _ in range(REPEATS):  # interleaved, so drift on a noisy machine hits every variant alike
        runs["a"].append(full_pipeline(lines, 1))
        runs["b"].append(raw_durable(evaluator, lines))
        if the_toy is not None:
            runs["c"].append(toy(*the_toy))
        runs["one"].append(full_pipeline(lines, 1))
        runs["two"].append(full_pipeline(lines, 2))
    for by, k in (("wall clock", 0), ("CPU time", 1)):
        report(by, {name: [r[k] for r in values] for name, values in runs.items()}, k == 1)
    p50, p99, cpu50, cpu99 = latencies_us(evaluator, lines)
    print(f"one evaluation: p50 {p50:.0f} µs, p99 {p99:.0f} µs   (target p99 < 600 µs)")
    print(f"    its CPU time: p50 {cpu50:.0f} µs, p99 {cpu99:.0f} µs")
    before, after = rss_growth(evaluator, lines, RSS_RECORDS)
    print(
        f"RSS over {RSS_RECORDS} evaluations: {before:.1f} MB -> {after:.1f} MB, growth {after - before:+.1f} MB "
        f"(target < 20 MB over 1,000,000); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB"
    )


if __name__ == "__main__":
    main()
