"""Render a results file as a summary with plots, so an operator can look instead of read."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.vocabulary import SEVERITIES

COLORS = {
    "contraindicated": "#7d1020",
    "major": "#c0392b",
    "moderate": "#e67e22",
    "minor": "#f1c40f",
    "info": "#8fb3cc",
}


@dataclass
class Tally:
    """Counts read from one or more result files."""

    records: int = 0
    ok: int = 0
    rejected: int = 0
    by_severity: Counter[str] = field(default_factory=Counter)
    by_finding: Counter[str] = field(default_factory=Counter)
    finding_severity: dict[str, str] = field(default_factory=dict)
    caps: list[float] = field(default_factory=list)
    reject_reasons: Counter[str] = field(default_factory=Counter)
    rulesets: Counter[str] = field(default_factory=Counter)


def tally(paths: list[Path]) -> Tally:
    """Read result lines (results and rejects alike) and count what a summary shows."""
    t = Tally()
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    result: dict[str, Any] = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {number} is not JSON ({e.msg})") from None
                try:
                    _count(t, result)
                except (KeyError, TypeError, AttributeError, ValueError) as e:
                    raise ValueError(
                        f"{path}: line {number} is not an mgreview result ({type(e).__name__}: {e})"
                    ) from None
    return t


def _count(t: Tally, result: dict[str, Any]) -> None:
    """Add one result line to the tally."""
    t.records += 1
    ref = result.get("ruleset", {})
    t.rulesets[f"{ref.get('id')} v{ref.get('version')} {str(ref.get('sha256', ''))[:12]}"] += 1
    if result.get("status") != "ok":
        t.rejected += 1
        for error in result.get("errors", []):
            t.reject_reasons[f"{error.get('field')}: {error.get('reason')}"] += 1
        return
    t.ok += 1
    for finding in result.get("findings", []):
        t.by_severity[finding["severity"]] += 1
        t.by_finding[finding["id"]] += 1
        t.finding_severity[finding["id"]] = finding["severity"]
    t.caps.append(float(result["plan"]["max_elemental_mg_per_day"]))


def figure(t: Tally) -> Any:
    """One figure with four panels: severities, finding ids, dose caps, reject reasons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(15, 11))
    ax = axes[0][0]
    ax.bar(SEVERITIES, [t.by_severity.get(s, 0) for s in SEVERITIES], color=[COLORS[s] for s in SEVERITIES])
    ax.set_title("Findings by severity")
    ax = axes[0][1]
    top = t.by_finding.most_common(20)[::-1]
    ax.barh([k for k, _ in top], [v for _, v in top], color=[COLORS[t.finding_severity[k]] for k, _ in top])
    ax.set_title("Most frequent findings (top 20)")
    ax.tick_params(axis="y", labelsize=8)
    ax = axes[1][0]
    caps = Counter(t.caps)
    ax.bar([f"{c:g}" for c in sorted(caps)], [caps[c] for c in sorted(caps)], color="#1f3b4d")
    ax.set_title("Suggested cap, elemental Mg mg/day (0 = physician decides)")
    ax = axes[1][1]
    reasons = t.reject_reasons.most_common(10)[::-1]
    if reasons:
        ax.barh([_short(k) for k, _ in reasons], [v for _, v in reasons], color="#7f8c8d")
        ax.tick_params(axis="y", labelsize=8)
    else:
        ax.text(0.5, 0.5, "no rejected records", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Reasons records were rejected (top 10)")
    fig.suptitle(f"{t.records} records: {t.ok} evaluated, {t.rejected} rejected", fontsize=14)
    fig.tight_layout()
    return fig


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render(paths: list[Path], output: Path) -> Tally:
    """Write the report: PNG when `output` ends in .png, otherwise HTML with the figure and tables."""
    t = tally(paths)
    fig = figure(t)
    if output.suffix.lower() == ".png":
        fig.savefig(output, dpi=110)
        return t
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(t.finding_severity[k])}</td><td>{v}</td></tr>"
        for k, v in t.by_finding.most_common()
    )
    rejects = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in t.reject_reasons.most_common())
    rulesets = ", ".join(f"{html.escape(k)} ({v})" for k, v in t.rulesets.items())
    output.write_text(
        "<!doctype html><meta charset='utf-8'><title>mgreview batch report</title>"
        "<style>body{font:14px system-ui;margin:1.5rem}td,th{padding:2px 10px;text-align:left}</style>"
        f"<h1>mgreview batch report</h1><p>{t.records} records: {t.ok} evaluated, {t.rejected} rejected. "
        f"Ruleset: {rulesets}.</p><img alt='summary plots' style='max-width:100%' src='data:image/png;base64,{image}'>"
        f"<h2>Findings</h2><table><tr><th>id</th><th>severity</th><th>records</th></tr>{rows}</table>"
        f"<h2>Rejected records</h2><table><tr><th>field: reason</th><th>count</th></tr>{rejects}</table>",
        "utf-8",
    )
    return t
