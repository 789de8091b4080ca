"""Every table keyed by severity covers exactly the severities declared in engine.vocabulary."""

import pytest

from engine import cards, detected_issue, report
from engine.vocabulary import SEVERITIES


@pytest.mark.parametrize(
    "name, table",
    [
        ("detected_issue.SEVERITY", detected_issue.SEVERITY),
        ("report.COLORS", report.COLORS),
        ("cards.INDICATOR", cards.INDICATOR),
    ],
)
def test_table_covers_the_declared_severities(name: str, table: dict[str, str]) -> None:
    assert set(table) == set(SEVERITIES), name
