"""The case page a clinician reads, top to bottom: the patient summary in the units entered, the bottom line, findings
with the patient's value against the threshold and readable evidence, source links, and a plan that gives no advice
for taking magnesium when it proposes none; in English and Dutch. The view model (review_ui/presenting.py) directly,
then the page through the test client on SQLite and PostgreSQL."""

import io
import json
import re

import pytest

from engine import ruleset as rulesets
from engine.evaluate import Evaluator
from review_ui import presenting, workflow
from review_ui.db import db
from review_ui.models import Case
from tests.helpers import RULESETS, SAMPLE, SYNTHEA, lines, record

PASSWORD = "correct horse battery"
MG_DL = {"value": 4.6, "unit": "mg/dL"}  # 1.89 mmol/L: toxic, urgent
LEVOTHYROXINE_EU = {"jurisdiction": "EU", "medications": ["levothyroxine 100 mcg"]}
TREY = SYNTHEA / "Trey_Berge_99153850-84f1-4de6-9e19-3e0d6eeedeb2.json"


def result_of(evaluator, **changes):
    return evaluator.evaluate(record(**changes)).to_dict()


# --- the view model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "show, value, shown",
    [
        (presenting.one_decimal, 41.497094, "41.5"),
        (presenting.one_decimal, 52.0, "52"),
        (presenting.mg, 250.0, "250"),
        (presenting.mg, 87.6, "88"),
        (lambda v: presenting.decimals(v, 2), 1.892615, "1.89"),
        (lambda v: presenting.decimals(v, 2), 0.7, "0.70"),
    ],
)
def test_numbers_read_as_clinicians_read_them(show, value, shown):
    assert show(value) == shown


def test_dutch_fields_are_picked_for_a_dutch_page_when_the_result_has_them():
    finding = {"id": "X", "message": "Keep 4 h apart.", "message_nl": "Houd 4 uur tussen."}
    assert presenting.localized(finding, "message", "nl") == "Houd 4 uur tussen."
    assert presenting.localized(finding, "message", "en") == "Keep 4 h apart."
    assert presenting.localized({"message": "Only English."}, "message", "nl") == "Only English."  # v1, v2 results
    assert presenting.localized({"message": "x", "message_nl": None}, "message", "nl") == "x"


def test_the_plan_takes_dutch_monitoring_and_ceiling_reason(evaluator):
    yes = {
        "supplement": "yes",
        "max_elemental_mg_per_day": 250,
        "doses_per_day": 2,
        "monitoring": ["re-check serum magnesium after starting [S10]"],
        "monitoring_nl": ["serum-magnesium opnieuw controleren na de start [S10]"],
        "separations": [],
    }
    dutch = presenting.plan_view(yes, evaluator.ruleset, "nl")
    dutch_lines = [(m.text, m.sources) for m in dutch.monitoring]
    assert dutch_lines == [("serum-magnesium opnieuw controleren na de start", ["S10"])]
    assert [m.text for m in presenting.plan_view(yes, evaluator.ruleset, "en").monitoring] == [
        "re-check serum magnesium after starting"
    ]
    no = {
        "supplement": "no",
        "max_elemental_mg_per_day": 0,
        "ceiling_if_physician_agrees_mg_per_day": 100,
        "ceiling_reason": "The magnesium already taken uses up the upper limit.",
        "ceiling_reason_nl": "Het magnesium dat al wordt ingenomen gebruikt de bovengrens op.",
        "monitoring": ["re-check serum magnesium after starting"],
    }
    plan = presenting.plan_view(no, evaluator.ruleset, "nl")
    assert plan.ceiling_reason == "Het magnesium dat al wordt ingenomen gebruikt de bovengrens op."
    assert plan.monitoring == [] and plan.doses_per_day == 0  # no advice for taking magnesium


@pytest.mark.parametrize(
    "changes, bottom_line",
    [
        ({"serum_magnesium": MG_DL}, "Do not start magnesium: urgent physician review."),
        ({"egfr_ml_min_1_73m2": 20}, "Do not start magnesium: a physician decides (Severe kidney impairment)."),
        (LEVOTHYROXINE_EU, "Up to 250 mg elemental magnesium a day in 2 doses, 4 h apart from levothyroxine."),
        ({}, "Up to 350 mg elemental magnesium a day in 2 doses."),
        (
            {"medications": ["doxycycline 100 mg"]},
            "Up to 350 mg elemental magnesium a day in 2 doses, doxycycline at least 2 h before or 4 h after"
            " magnesium.",
        ),
    ],
)
def test_the_bottom_line_in_one_sentence(evaluator, changes, bottom_line):
    plan = result_of(evaluator, **changes)["plan"]
    assert presenting.bottom_line(plan, evaluator.ruleset, "en") == bottom_line


@pytest.mark.parametrize(
    "rule_id, words",
    [
        ("UL_EU_4_PLUS", "EU upper limit for age 4+: 250 mg/day"),
        ("UL_EU_4_PLUS_EXCEEDED", "EU upper limit for age 4+: 250 mg/day"),
        ("UL_US_1_3", "US upper limit for ages 1-3: 65 mg/day"),
        ("RENAL_SEVERE", "Severe kidney impairment"),
        ("URGENT", "urgent physician review"),
    ],
)
def test_the_caps_reason_in_words(evaluator, rule_id, words):
    assert presenting.reason_words(evaluator.ruleset, rule_id, "en") == words


def test_a_finding_shows_the_value_against_its_threshold_in_the_unit_entered(evaluator):
    result = result_of(evaluator, serum_magnesium=MG_DL)
    toxic = next(f for f in result["findings"] if f["id"] == "HYPERMAGNESEMIA_TOXIC")
    view = presenting.finding_view(toxic, evaluator.ruleset, record(serum_magnesium=MG_DL), "en")
    assert view.title == "Toxic serum magnesium" and view.unverified
    assert view.against == ["Serum magnesium 4.6 mg/dL (1.89 mmol/L) is at or above 1.74 mmol/L"]
    in_mmol = {"value": 1.9, "unit": "mmol/L"}
    toxic = next(f for f in result_of(evaluator, serum_magnesium=in_mmol)["findings"] if f["id"] == toxic["id"])
    view = presenting.finding_view(toxic, evaluator.ruleset, record(serum_magnesium=in_mmol), "en")
    assert view.against == ["Serum magnesium 1.90 mmol/L is at or above 1.74 mmol/L"]  # no mg/dL nobody entered


def test_both_ends_of_a_range_in_one_sentence(evaluator):
    low = {"value": 1.6, "unit": "mg/dL"}  # 0.66 mmol/L: low, not severe
    result = result_of(evaluator, serum_magnesium=low)
    finding = next(f for f in result["findings"] if f["id"] == "HYPOMAGNESEMIA")
    view = presenting.finding_view(finding, evaluator.ruleset, record(serum_magnesium=low), "en")
    assert view.title == "Low serum magnesium"
    range_sentence = "Serum magnesium 1.6 mg/dL (0.66 mmol/L) is at or above 0.50 mmol/L and is below 0.75 mmol/L"
    assert view.against == [range_sentence]


def test_a_healthy_record_has_nothing_against_a_threshold(evaluator):
    result = result_of(evaluator)
    views = [presenting.finding_view(f, evaluator.ruleset, record(), "en") for f in result["findings"]]
    assert all(v.against == [] for v in views)


@pytest.mark.parametrize(
    "line, egfr, how, magnesium",
    [
        ("P0002", "73.6 mL/min/1.73 m²", "CKD-EPI 2021 from creatinine 1.1 mg/dL", "1.9 mg/dL (0.78 mmol/L)"),
        ("P0003", "75 mL/min/1.73 m²", "CKD-EPI 2021 from creatinine 80 µmol/L (0.90 mg/dL)", "0.71 mmol/L"),
        ("P0001", "98 mL/min/1.73 m²", "reported by the lab", "0.82 mmol/L"),
    ],
)
def test_the_summary_of_the_samples_in_the_units_entered(evaluator, line, egfr, how, magnesium):
    sample = next(r for r in lines(SAMPLE) if r["id"] == line)
    summary = presenting.summary(evaluator.evaluate(sample).to_dict(), sample)
    assert (summary.egfr.value, summary.egfr.how, summary.magnesium.value) == (egfr, how, magnesium)


# --- the page ----------------------------------------------------------------------------------------------------


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD})
    return client


def upload(client, *records):
    body = "\n".join(json.dumps(r) for r in records).encode()
    data = {"file": (io.BytesIO(body), "in.jsonl")}
    response = client.post("/import", data=data, content_type="multipart/form-data", follow_redirects=True)
    assert "0 rejected" in response.get_data(as_text=True)


def case_page(app, client, ref, language="en"):
    with app.app_context():
        case_id = db.session.query(Case).filter_by(patient_ref=ref).one().id
    response = client.get(f"/cases/{case_id}", headers={"Accept-Language": language})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def section(page, start, end):
    return page[page.index(start) : page.index(end)]


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_summary_shows_values_in_the_unit_entered(app, client):
    mg_dl = record(
        id="U1",
        age_years=67,
        sex="male",
        egfr_ml_min_1_73m2=None,
        serum_creatinine={"value": 1.4, "unit": "mg/dL"},
        serum_magnesium={"value": 1.9, "unit": "mg/dL"},
        medications=["levothyroxine 100 mcg", "zorbulax 10 mg"],
        labs={"serum_creatinine": {"date": "2025-01-15", "status": "final"}},
    )
    mmol = record(id="U2", egfr_ml_min_1_73m2=41.497, labs={"egfr": {"date": "2025-02-01"}})
    upload(client, mg_dl, mmol)
    page = case_page(app, client, "U1")
    summary = text(section(page, 'id="patient-summary"', 'id="intake-as-received"'))
    assert "67 years, male" in summary
    assert "1.9 mg/dL (0.78 mmol/L)" in summary
    assert "CKD-EPI 2021 from creatinine 1.4 mg/dL; date 2025-01-15; status final" in summary
    assert "levothyroxine 100 mcg → levothyroxine (thyroid hormone)" in summary
    assert "zorbulax 10 mg → not recognised" in summary
    assert "ckd_epi_2021" not in page
    assert re.search(r'<details id="intake-as-received"><summary>Intake as received</summary><pre>', page)  # closed
    beside = text(section(case_page(app, client, "U2"), 'id="patient-summary"', 'id="intake-as-received"'))
    assert "41.5 mL/min/1.73 m² , KDIGO G3b" in beside and "41.497" not in beside
    assert "reported by the lab; date 2025-02-01" in beside
    assert "0.85 mmol/L" in beside and "mg/dL" not in beside


def test_missing_values_say_not_given(app, client):
    upload(client, record(id="M1", egfr_ml_min_1_73m2=None, serum_magnesium=None))
    page = case_page(app, client, "M1")
    assert re.search(r'id="summary-egfr">\s*not given', page)
    assert re.search(r'id="summary-magnesium">\s*not given', page)


def test_no_magnesium_carries_no_advice_for_taking_it(app, client):
    upload(client, record(id="N1", egfr_ml_min_1_73m2=20), record(id="N2", **LEVOTHYROXINE_EU))
    page = case_page(app, client, "N1")
    assert "Do not start magnesium: a physician decides (Severe kidney impairment)." in page
    plan = text(section(page, 'id="suggested-plan"', "Audit log for this case"))
    assert "No magnesium proposed." in plan and "If a physician agrees: up to 350 mg/day" in plan
    assert "US upper limit for age 9+: 350 mg/day" in plan
    for advice in ("in 2 doses", "doses a day", "after starting", "while on magnesium", "Daily schedule"):
        assert advice not in plan
    assert "RENAL_SEVERE" not in text(section(page, "<h1>", "<h2>Findings"))
    normal = case_page(app, client, "N2")
    assert "Up to 250 mg elemental magnesium a day in 2 doses, 4 h apart from levothyroxine." in normal
    plan = text(section(normal, 'id="suggested-plan"', "Audit log for this case"))
    assert "in 2 doses a day" in plan and "Daily schedule" in plan
    assert "levothyroxine: at least 4 h before or 4 h after magnesium" in plan
    assert "(EU upper limit for age 4+: 250 mg/day)" in plan and "UL_EU_4_PLUS" not in normal
    assert "after starting" in plan  # monitoring while on magnesium


def test_urgent_case_findings_show_the_value_against_the_threshold(app, client):
    upload(client, record(id="H1", serum_magnesium=MG_DL), record(id="H2"))
    page = case_page(app, client, "H1")
    assert "Do not start magnesium: urgent physician review." in page
    findings = section(page, "<h2>Findings</h2>", 'id="suggested-plan"')
    assert "Toxic serum magnesium" in findings and "HYPERMAGNESEMIA_TOXIC</h3>" not in findings
    assert "Serum magnesium 4.6 mg/dL (1.89 mmol/L) is at or above 1.74 mmol/L." in findings
    assert "Rests on an unverified source." in findings
    assert "Would not apply if serum magnesium &lt; 1.74 mmol/L" in findings  # not rounded to 1.7
    assert '<table class="evidence">' in findings and "{" not in findings and "}" not in findings
    assert "<td>serum magnesium</td><td>4.6 mg/dL (1.89 mmol/L) (is at or above 1.74 mmol/L)</td>" in findings
    healthy = section(case_page(app, client, "H2"), "<h2>Findings</h2>", 'id="suggested-plan"')
    assert "is at or above" not in healthy and "unverified" not in healthy


def test_sources_are_links_to_their_anchor(app, client):
    upload(client, record(id="L1", **LEVOTHYROXINE_EU))
    page = case_page(app, client, "L1")
    assert '<a href="/sources#S19">S19</a>: Drugs.com' in page
    assert "Would not apply if levothyroxine is stopped." in page
    assert "<abbr" not in page
    sources = client.get("/sources").get_data(as_text=True)
    assert 'id="S19"' in sources


def test_a_form_with_a_list_condition_does_not_break_the_page(app, client):
    """Bug: the page failed (unhashable list) explaining FORM_LOW_SOLUBILITY's `in ["oxide", "sulfate"]`."""
    upload(client, record(id="O1", supplement={"form": "oxide", "dose_mg": 200, "dose_basis": "elemental"}))
    page = case_page(app, client, "O1")
    assert "Poorly absorbed magnesium form" in page
    assert "Would not apply if magnesium form is not one of oxide, sulfate" in page


def test_the_page_in_dutch(app, client):
    upload(client, record(id="D1", egfr_ml_min_1_73m2=20), record(id="D2", **LEVOTHYROXINE_EU))
    page = case_page(app, client, "D1", "nl")
    assert '<html lang="nl">' in page
    for heading in ("<h2>Patiënt</h2>", "<h2>Bevindingen</h2>", "<h2>Voorgesteld plan</h2>"):
        assert heading in page
    assert "Niet starten met magnesium: een arts beslist (Ernstige nierfunctiestoornis)." in page
    assert "Geen magnesium voorgesteld." in page and "Als een arts akkoord gaat: maximaal 350 mg/dag" in page
    assert "Suggested plan" not in page and "Findings" not in page
    capped = case_page(app, client, "D2", "nl")
    assert "Maximaal 250 mg elementair magnesium per dag, verdeeld over 2 innames" in capped
    assert "levothyroxine: minstens 4 uur vóór of 4 uur na magnesium" in capped


@pytest.mark.skipif(not TREY.exists(), reason="../shared/external/fhir is not beside the checkout")
def test_a_synthea_bundle_reads_as_a_patient(app, client):
    bundle = json.loads(TREY.read_text("utf-8"))
    upload(client, bundle)
    with app.app_context():
        ref = db.session.query(Case).one().patient_ref
    page = case_page(app, client, ref)
    summary = text(section(page, 'id="patient-summary"', 'id="intake-as-received"'))
    assert "107.98 years, male" in summary
    assert "93.9 mL/min/1.73 m²" in summary and "reported by the lab; date 2021-01-04; status final" in summary
    assert "Levothyroxine Sodium 0.075 MG Oral Tablet → levothyroxine (thyroid hormone)" in summary
    assert re.search(r'id="summary-magnesium">\s*not given', page)
    assert "4 h apart from levothyroxine" in text(section(page, 'id="bottom-line"', "</p>"))


def test_a_result_of_v1_reads_in_words_too():
    """v1 has no finding catalogue and no plan contract: titles come from the newest catalogue, a physician decides."""
    v1 = Evaluator(rulesets.load(RULESETS / "v1.json"))
    result = v1.evaluate(record(egfr_ml_min_1_73m2=20)).to_dict()
    page = presenting.case_page(result, record(egfr_ml_min_1_73m2=20), v1.ruleset, "en")
    assert page.bottom_line == "Do not start magnesium: a physician decides (Severe kidney impairment)."
    assert page.findings[0].title == "Severe kidney impairment"
    assert page.plan.physician == "a physician decides (Severe kidney impairment)"


@pytest.mark.parametrize(
    "language, expected",
    [
        ("nl", ["protonpompremmer", "lisdiureticum", "hartfalen", "schildklierhormoon"]),
        ("en", ["proton pump inhibitor", "loop diuretic", "heart failure", "thyroid hormone"]),
    ],
)
def test_drug_classes_and_conditions_read_in_words_of_the_page_language(app, language, expected):
    with app.test_request_context(headers={"Accept-Language": language}):
        shown = [presenting.words(code) for code in ("ppi", "loop_diuretic", "heart_failure", "thyroid_hormone")]
        assert shown == expected
        assert presenting.words("a_code_not_listed") == "a code not listed"  # beside: no table entry, no guess
