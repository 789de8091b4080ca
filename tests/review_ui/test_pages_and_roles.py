"""The review UI's layout: roles and the override rule declared once, page modules independent of each other."""

import ast
from pathlib import Path

import pytest

from engine import vocabulary
from review_ui.models import ROLES, SEVERITY_RANK, Case, Role, User
from tests.helpers import ROOT

PACKAGE = ROOT / "review_ui"
PAGE_MODULES = (  # blueprints: create_app registers each
    "case_views",
    "import_views",
    "audit_views",
    "ruleset_views",
    "cdshooks",
    "burden_views",
    "plan_views",
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (names imported from a package count as its submodules)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"))
def test_only_create_app_imports_the_page_modules(module):
    others = {f"review_ui.{other}" for other in PAGE_MODULES if other != module}
    assert imported_modules(PACKAGE / f"{module}.py") & others == set()


def test_every_blueprint_module_is_a_page_module():
    blueprints = {p.stem for p in PACKAGE.glob("*.py") if "Blueprint(" in p.read_text("utf-8")}
    assert blueprints == {*PAGE_MODULES, "auth"}  # auth's sign-in page beside the role guards every page imports


def test_roles_are_the_enum():
    assert ROLES == ("clinician", "rule_editor", "admin") == tuple(Role)


@pytest.mark.parametrize(
    "role, works_cases, reads_drafts, edits_rulesets",
    [("clinician", True, False, False), ("rule_editor", False, True, True), ("admin", True, True, False)],
)
def test_what_each_role_may_do(role, works_cases, reads_drafts, edits_rulesets):
    user = User(role=role)
    assert (user.works_cases, user.reads_drafts, user.edits_rulesets) == (works_cases, reads_drafts, edits_rulesets)


def test_case_severity_ranks_follow_the_engine_then_none():
    assert list(SEVERITY_RANK) == [*vocabulary.SEVERITIES, "none"]
    assert list(SEVERITY_RANK.values()) == list(range(len(SEVERITY_RANK)))


@pytest.mark.parametrize(
    "severity, needs_override",
    [
        ("contraindicated", True),
        ("major", True),
        ("moderate", False),
        ("minor", False),
        ("info", False),
        ("none", False),
    ],
)
def test_a_change_needs_an_override_on_a_major_or_worse_case(severity, needs_override):
    assert Case(severity_rank=SEVERITY_RANK[severity]).change_needs_override is needs_override
