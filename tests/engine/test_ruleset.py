"""The ruleset checker: every bad edit is caught with a message that names the rule and suggests a fix."""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check, scenarios
from engine import vocabulary as vocab


@pytest.fixture(scope="module")
def published():
    return json.loads(rs.latest_published().read_text("utf-8"))


def problems(doc):
    return [str(e) for e in ruleset_check.check_data(doc)]


def edit(doc, rule_id, change):
    doc = copy.deepcopy(doc)
    rule = next(r for r in doc["rules"] if r["id"] == rule_id)
    change(rule)
    return doc


def test_published_ruleset_is_valid_and_unchanged():
    for path in rs.ruleset_files():
        assert rs.check_file(path) == []


def test_published_ruleset_reports_every_catalogue_finding(published):
    loaded = rs.load()
    made = {r.then.get("finding") for r in loaded.rules}
    assert set(vocab.FINDING_IDS) <= made
    assert loaded.ref == {
        "id": "magnesium",
        "version": loaded.version,
        "sha256": rs.sha256_of(rs.latest_published()),
    }


def test_unknown_fact_suggests_the_nearest(published):
    doc = edit(
        published,
        "RENAL_MODERATE",
        lambda r: r["when"][0]["where"].__setitem__(0, ["egrf_ml_min_1_73m2", ">=", 30]),
    )
    assert any(
        "rule RENAL_MODERATE" in p
        and "unknown fact patient.egrf_ml_min_1_73m2" in p
        and "did you mean 'egfr_ml_min_1_73m2'" in p
        for p in problems(doc)
    )


def test_rule_without_source_is_refused(published):
    doc = edit(published, "PPI", lambda r: r.__setitem__("sources", []))
    assert any("rule PPI" in p and "at least one source" in p for p in problems(doc))


def test_unknown_source_tag_is_refused(published):
    doc = edit(published, "PPI", lambda r: r.__setitem__("sources", ["S99"]))
    assert any("unknown source tag 'S99'" in p for p in problems(doc))


def test_unverified_rule_needs_a_note(published):
    doc = edit(published, "INSTI_ELVITEGRAVIR", lambda r: r.pop("note"))
    assert any("unverified (U) rule must say so" in p for p in problems(doc))


def test_unknown_finding_id_suggests_catalogue_id(published):
    doc = edit(published, "PPI", lambda r: r["then"].__setitem__("finding", "PPI_LONGTERM"))
    assert any("unknown finding id 'PPI_LONGTERM'" in p and "PPI_LONG_TERM" in p for p in problems(doc))


def test_unknown_drug_class_suggests(published):
    doc = edit(
        published,
        "TETRACYCLINE",
        lambda r: r["when"][0]["where"].__setitem__(0, ["classes", "contains", "tetracyclin"]),
    )
    assert any("unknown value 'tetracyclin'" in p and "did you mean 'tetracycline'" in p for p in problems(doc))


def test_unknown_effect_and_bad_separation(published):
    doc = edit(published, "DIGOXIN", lambda r: r["then"].__setitem__("separation", {"before": 2}))
    assert any("separation must be {before_h, after_h}" in p for p in problems(doc))
    doc = edit(published, "DIGOXIN", lambda r: r["then"].__setitem__("cap", 0))
    assert any("unknown effect 'cap'" in p and "cap_mg" in p for p in problems(doc))


def test_message_placeholder_must_be_a_matched_field(published):
    doc = edit(published, "PPI", lambda r: r["then"].__setitem__("message", "{ingredient} at {egfr_ml_min_1_73m2}"))
    assert any("placeholder {egfr_ml_min_1_73m2}" in p for p in problems(doc))


def test_derived_fact_without_consumer_is_refused(published):
    doc = edit(published, "EGFR_BELOW_60", lambda r: r["then"].__setitem__("derive", "egfr_under_60"))
    found = problems(doc)
    assert any("derived fact 'egfr_under_60' is never used" in p for p in found)
    assert any("'egfr_below_60' is matched but no rule derives it" in p for p in found)


def test_rule_that_can_never_fire_on_missing_derivation(published):
    doc = copy.deepcopy(published)
    doc["rules"] = [r for r in doc["rules"] if r["id"] != "EGFR_BELOW_60"]
    assert any("can never fire" in p for p in problems(doc))


@pytest.mark.parametrize(
    "conditions, contradicts",
    [
        ([[">=", 18], ["<", 10]], True),
        ([[">=", 18], ["<", 18]], True),
        ([[">", 18], ["<=", 18]], True),
        ([[">=", 18], ["<=", 18], ["<", 18]], True),
        ([["==", 5], [">", 6]], True),
        ([[">=", 18], ["<=", 18]], False),
        ([[">=", 18], ["<", 65]], False),
        ([["==", 7], ["<=", 7]], False),
    ],
)
def test_contradicting_thresholds_are_a_rule_that_can_never_fire(published, conditions, contradicts):
    where = [["age_years", op, value] for op, value in conditions]
    doc = edit(published, "SPLIT_DOSE", lambda r: r["when"][0].__setitem__("where", where))
    errors = list(ruleset_check.check_data(doc))
    hit = [e for e in errors if "contradict each other" in str(e)]
    assert bool(hit) == contradicts, [str(e) for e in errors]
    if contradicts:
        assert hit[0].rule_id == "SPLIT_DOSE" and hit[0].field == f"when[0].where[{len(where) - 1}]"
        assert "can never fire" in hit[0].reason


def test_contradicting_equalities_are_refused(published):
    where = [["sex", "==", "male"], ["sex", "==", "female"]]
    doc = edit(published, "SPLIT_DOSE", lambda r: r["when"][0].__setitem__("where", where))
    assert any("conditions on sex contradict each other" in p for p in problems(doc))


def test_exponent_numbers_are_refused(published):
    doc = edit(
        published,
        "HYPOMAGNESEMIA",
        lambda r: r["when"][0]["where"].__setitem__(0, ["serum_mg_mmol_l", ">=", 1e-05]),
    )
    assert any("without an exponent" in p for p in problems(doc))


def test_overlapping_upper_limit_bands_are_refused(published):
    doc = copy.deepcopy(published)
    doc["upper_limits"][1]["age_min_years"] = 3
    assert any("overlaps UL_US_1_3" in p for p in problems(doc))


def test_missing_catalogue_finding_is_refused(published):
    doc = copy.deepcopy(published)
    doc["rules"] = [r for r in doc["rules"] if r["then"].get("finding") != "GI_INTOLERANCE"]
    assert any("catalogue finding GI_INTOLERANCE has no rule" in p for p in problems(doc))


def test_too_many_rules_on_one_fact_type_is_refused(published):
    doc = copy.deepcopy(published)
    template = next(r for r in doc["rules"] if r["id"] == "PPI")
    for i in range(70):
        extra = copy.deepcopy(template)
        extra["id"] = f"EXTRA_{i}"
        doc["rules"].append(extra)
    assert any("rule patterns can match one medication fact; durable_rules allows 64" in p for p in problems(doc))


def test_changed_published_file_is_detected(tmp_path, monkeypatch, published):
    folder = tmp_path / "magnesium"
    folder.mkdir()
    path = folder / "v1.json"
    path.write_text(json.dumps(published), "utf-8")
    manifest = tmp_path / "published.json"
    manifest.write_text(json.dumps({"magnesium/v1.json": rs.sha256_of(path)}), "utf-8")
    monkeypatch.setattr(rs, "PUBLISHED_MANIFEST", manifest)
    assert rs.check_file(path) == []
    path.write_text(json.dumps(published) + " ", "utf-8")
    assert any("published version changed" in str(e) for e in rs.check_file(path))


def test_load_raises_on_invalid_json(tmp_path):
    bad = tmp_path / "v1.json"
    bad.write_text("{", "utf-8")
    with pytest.raises(rs.RulesetError, match="not valid JSON"):
        rs.load(bad)


def test_huge_value_list_is_refused_before_it_can_hang_durable(published):
    names = [f"drug{i}" for i in range(300)]
    doc = edit(
        published, "FLUOROQUINOLONE_OTHER", lambda r: r["when"][0]["where"].__setitem__(0, ["text", "in", names])
    )
    assert any("300 values in one condition" in p for p in problems(doc))


def test_rulesets_test_and_diff_commands(tmp_path, published):
    import subprocess
    import sys

    from engine import rulediff

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=rs.RULESETS_DIR.parent
        )

    ok = cli("rulesets", "test")
    assert ok.returncode == 0 and "76 of 76 scenarios pass" in ok.stdout
    draft = copy.deepcopy(published)
    newest = published["version"]
    draft.update(status="draft", version=newest + 1, supersedes=newest, change_note="moxifloxacin window")
    moxi = next(r for r in draft["rules"] if r["id"] == "FLUOROQUINOLONE_MOXIFLOXACIN")
    moxi["then"]["separation"]["before_h"] = 2
    for key in ("description", "message"):  # the wording follows the window (the checker compares them)
        where = moxi if key == "description" else moxi["then"]
        where[key] = where[key].replace("4 h before", "2 h before")
    for key in ("description_nl", "message_nl"):  # and the Dutch follows the English
        where = moxi if key == "description_nl" else moxi["then"]
        where[key] = where[key].replace("4 uur vóór", "2 uur vóór")
    folder = tmp_path / "magnesium"
    folder.mkdir()
    (folder / "v2.json").write_text(json.dumps(draft), "utf-8")
    (folder / "v2.scenarios.json").write_text(scenarios.path_for(rs.latest_published()).read_text("utf-8"))
    failing = cli("rulesets", "test", str(folder / "v2.json"))
    assert (
        failing.returncode == 1
        and "moxifloxacin: separation moxifloxacin: expected [4, 8], got [2, 8]" in failing.stderr
    )
    lines = rulediff.diff(published, draft)
    assert f"~ version: {newest} -> {newest + 1}" in lines
    assert any(
        line.startswith("~ rule FLUOROQUINOLONE_MOXIFLOXACIN: ") and "then.separation:" in line for line in lines
    )
    shown = cli("rulesets", "diff", str(rs.latest_published()), str(folder / "v2.json"))
    assert "~ rule FLUOROQUINOLONE_MOXIFLOXACIN" in shown.stdout


def test_finding_titles_come_from_the_ruleset_in_the_language_asked_else_english_else_the_id():
    v2 = rs.load(rs.RULESETS_DIR / "magnesium" / "v2.json")
    assert v2.finding_title("RENAL_SEVERE", "nl") == v2.raw["findings"]["RENAL_SEVERE"]["title_nl"]
    assert v2.finding_title("RENAL_SEVERE", "en") == v2.raw["findings"]["RENAL_SEVERE"]["title"]
    assert v2.finding_title("RENAL_SEVERE", "de") == v2.finding_title("RENAL_SEVERE")  # English
    assert v2.finding_title("NOT_A_FINDING", "nl") == "NOT_A_FINDING"
