"""Alert burden per rule, computed from hand-built rows."""

from datetime import UTC, datetime, timedelta

import pytest

from engine import burden
from engine.burden import CaseRow, DecisionRow, FeedbackRow, FiredFinding

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PPI = FiredFinding("PPI_LONG_TERM", "moderate", ("PPI_LONG",))
HYPO = FiredFinding("HYPOMAGNESEMIA", "major", ("MG_LOW",))


def case(case_id, patient, *findings, minutes=0):
    return CaseRow(case_id, patient, T0 + timedelta(minutes=minutes), tuple(findings))


def decision(case_id, kind, code=None, minutes=10):
    return DecisionRow(case_id, kind, code, T0 + timedelta(minutes=minutes))


def row(result, rule_id):
    return next(r for r in result.rules if r.rule_id == rule_id)


@pytest.fixture
def result():
    cases = [
        case(1, "p1", PPI, HYPO),
        case(2, "p1", PPI, minutes=60),  # p1 sees the PPI alert again
        case(3, "p2", PPI),
        case(4, "p3", HYPO),  # never decided
    ]
    decisions = [
        decision(1, "adjust", "PHYSICIAN_ORDER", minutes=30),
        decision(2, "approve", minutes=70),
        decision(3, "adjust", "PHYSICIAN_ORDER", minutes=20),
    ]
    feedback = [
        FeedbackRow("c1", "overridden", "SPECIALIST_ADVICE", T0 + timedelta(minutes=2), PPI, "p4", T0),
        FeedbackRow("c2", "overridden", None, T0, None),  # a card no case showed
    ]
    return burden.compute(cases, decisions, feedback, rule_findings={"PPI_LONG": "PPI_LONG_TERM", "NEVER": "X"})


def test_fired_answered_and_overridden(result):
    ppi = row(result, "PPI_LONG")
    assert (ppi.fired, ppi.cards, ppi.answered, ppi.overridden) == (4, 1, 4, 3)
    assert ppi.override_rate == pytest.approx(0.75)
    hypo = row(result, "MG_LOW")
    assert (hypo.fired, hypo.answered, hypo.overridden, hypo.severity) == (2, 1, 1, "major")


def test_reasons_most_frequent_first(result):
    assert row(result, "PPI_LONG").top_reasons() == [("PHYSICIAN_ORDER", 2), ("SPECIALIST_ADVICE", 1)]


def test_repeat_rate_per_patient(result):
    ppi = row(result, "PPI_LONG")
    assert ppi.patients == {"p1", "p2", "p4"}
    assert ppi.repeat_rate == pytest.approx(1 / 4)  # one of four alerts was p1's second
    assert row(result, "MG_LOW").repeat_rate == 0.0


def test_median_time_to_decision(result):
    # cases 30, 10 and 20 minutes, the card 2 minutes
    assert row(result, "PPI_LONG").median_seconds_to_decision == pytest.approx(15 * 60)
    assert row(result, "MG_LOW").median_seconds_to_decision == pytest.approx(30 * 60)


def test_untraced_feedback_counted_apart(result):
    assert result.untraced_feedback == 1


def test_each_override_counted_once_over_all_rules(result):
    # case 1's override answers both its findings, but it is one override; the untraced card has no code
    assert result.reasons == {"PHYSICIAN_ORDER": 2, "SPECIALIST_ADVICE": 1, burden.UNCODED: 1}


def test_rule_that_never_fired_has_a_zero_row(result):
    never = row(result, "NEVER")
    assert (never.finding_id, never.fired, never.answered) == ("X", 0, 0)
    assert never.override_rate is None and never.repeat_rate is None and never.median_seconds_to_decision is None
    assert result.rules[-1] is never  # the busiest rules come first


def test_empty_history():
    result = burden.compute([], [], [])
    assert result.rules == [] and result.untraced_feedback == 0
    assert burden.table(result) == []


def test_csv_table(result):
    first = dict(zip(burden.CSV_COLUMNS, burden.table(result)[0], strict=True))
    assert first["rule"] == "PPI_LONG" and first["override_rate"] == 0.75
    assert first["answers"] == "adjust 2; approve 1; card overridden 1"
    assert first["override_reasons"] == "PHYSICIAN_ORDER 2; SPECIALIST_ADVICE 1"
    assert first["median_seconds_to_decision"] == 900.0


def test_figure_renders(result):
    pytest.importorskip("matplotlib")
    assert burden.png_data_uri(result).startswith("data:image/png;base64,")
    assert burden.png_data_uri(burden.compute([], [])).startswith("data:image/png;base64,")
