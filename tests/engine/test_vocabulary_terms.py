"""Issue 11 and the coded-only part of issue 10: every term and code recognised, in Dutch and English.

Each table puts the true positives and the false alarms side by side: a term that must raise a finding,
and a near miss that must not. Everything tested here is vocabulary data in rulesets/magnesium/v2.json.
"""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check
from engine.conditions import ConceptResolver
from engine.medications import MedicationResolver
from tests.helpers import SYNTHEA, finding, ids, record

EXTERNAL = SYNTHEA
NO_EGFR = {"egfr_ml_min_1_73m2": None}


@pytest.fixture(scope="module")
def voc():
    return rs.load().vocabulary


@pytest.fixture(scope="module")
def concepts(voc):
    return ConceptResolver(voc)


@pytest.fixture(scope="module")
def meds(voc):
    return MedicationResolver(voc)


# --- conditions and symptoms, English and Dutch ------------------------------------------------------


@pytest.mark.parametrize(
    "text, concept",
    [
        ("sinusbradycardie", "cardiac_conduction_disorder"),
        ("bradycardie", "cardiac_conduction_disorder"),
        ("sick sinus syndroom", "cardiac_conduction_disorder"),
        ("AV-blok eerste graad", "cardiac_conduction_disorder"),
        ("AV-blok tweede graad, Mobitz type 1", "cardiac_conduction_disorder"),
        ("Wenckebach", "cardiac_conduction_disorder"),
        ("derdegraads AV-blok", "cardiac_conduction_disorder"),
        ("linkerbundeltakblok", "cardiac_conduction_disorder"),
        ("rechter bundeltakblok", "cardiac_conduction_disorder"),
        ("hartblok", "cardiac_conduction_disorder"),
        ("epileptische insulten", "seizure"),
        ("insulten", "seizure"),
        ("epileptisch insult", "seizure"),
        ("insult, epileptisch", "seizure"),
        ("epilepsie", "seizure"),
        ("epileptisch toeval", "seizure"),
        ("toevallen met tongbeet", "seizure"),
        ("stuipen", "seizure"),
        ("trembling", "tremor"),
        ("trillen", "tremor"),
        ("beven", "tremor"),
        ("niertransplantatie", "kidney_transplant"),
        ("renal transplant recipient", "kidney_transplant"),
        ("niertransplantatie", "ckd"),  # implied: a transplant kidney is a renal condition
        ("diabetic renal disease", "ckd"),
        ("nierinsufficiëntie", "ckd"),
        ("nierfalen", "kidney_failure"),
        ("zwanger, 12 weken", "pregnancy"),
        ("zwangerschap", "pregnancy"),
        ("Normal pregnancy", "pregnancy"),
        ("borstvoeding", "lactation"),
        ("geeft borstvoeding", "lactation"),
        ("short bowel syndrome", "short_bowel_syndrome"),
        ("status na gastric bypass", "bariatric_surgery"),
        ("ziekte van Crohn", "crohns_disease"),
        ("colitis ulcerosa", "ulcerative_colitis"),
        ("coeliakie", "coeliac_disease"),
        ("chronische diarree", "chronic_diarrhoea"),
        ("chronische diarree", "diarrhoea"),
        ("diarree sinds start magnesium", "magnesium_already_taken"),
        ("misselijk sinds ik magnesiumcitraat gebruik", "magnesium_already_taken"),
    ],
)
def test_terms_are_recognised(concepts, text, concept):
    assert concept in {c.concept for c in concepts.read(text, "condition").concepts}


@pytest.mark.parametrize(
    "text, concept",
    [
        ("insult", "seizure"),  # alone: a stroke or an injury as often as a seizure
        ("renal insult", "seizure"),
        ("cerebrale insulten", "seizure"),  # strokes
        ("toeval", "seizure"),
        ("bij toeval ontdekt", "seizure"),
        ("History of single seizure", "seizure"),  # a past event, recognised as seizure_history
        ("geen insulten", "seizure"),  # negated
        ("niet zwanger", "pregnancy"),
        ("zwangerschapswens", "pregnancy"),
        ("low magnesium since 2019", "magnesium_already_taken"),
        ("magnesiumtekort gemeten", "magnesium_already_taken"),
        ("serum magnesium laag sinds januari", "magnesium_already_taken"),
        ("kidney stones", "kidney_transplant"),
    ],
)
def test_near_misses_are_not_recognised(concepts, text, concept):
    assert concept not in {c.concept for c in concepts.read(text, "condition").concepts}


def test_history_of_a_single_seizure_is_shown_as_history(concepts):
    reading = concepts.read("History of single seizure", "condition")
    assert [c.concept for c in reading.concepts] == ["seizure_history"]


@pytest.mark.parametrize(
    "changes, present, absent",
    [
        ({"conditions": ["AV-blok tweede graad (Mobitz)"]}, "CARDIAC_CONDUCTION_DISORDER", None),
        ({"conditions": ["linkerbundeltakblok"]}, "CARDIAC_CONDUCTION_DISORDER", None),
        ({"conditions": ["atriumfibrilleren"]}, None, "CARDIAC_CONDUCTION_DISORDER"),
        ({"symptoms": ["epileptische insulten"]}, "RED_FLAG_SYMPTOMS", None),
        ({"symptoms": ["renal insult"]}, None, "RED_FLAG_SYMPTOMS"),
        ({"symptoms": ["epileptisch toeval"]}, "RED_FLAG_SYMPTOMS", None),
        ({"symptoms": ["bij toeval ontdekt"]}, None, "RED_FLAG_SYMPTOMS"),
        ({"symptoms": ["trembling hands"]}, "RED_FLAG_SYMPTOMS", None),
        ({"symptoms": ["geen insulten, geen trillen"]}, None, "RED_FLAG_SYMPTOMS"),
        ({"conditions": ["zwanger, 12 weken"]}, "PREGNANCY", None),
        ({"conditions": ["niet zwanger"]}, None, "PREGNANCY"),
        ({"conditions": ["geeft borstvoeding"]}, "LACTATION", None),
    ],
)
def test_terms_give_their_finding(evaluator, changes, present, absent):
    result = evaluator.evaluate(record(**changes)).to_dict()
    assert result["status"] == "ok"
    if present:
        assert present in ids(result)
        assert result["plan"]["max_elemental_mg_per_day"] == 0 or present in ("PREGNANCY", "LACTATION")
    if absent:
        assert absent not in ids(result)


def test_pregnancy_from_text_is_recorded_in_the_facts(evaluator):
    result = evaluator.evaluate(record(conditions=["zwanger, 12 weken"])).to_dict()
    assert result["facts"]["patient"]["pregnant"] is True
    assert any("pregnant: true, read from condition 'zwanger, 12 weken'" in n for n in result["facts"]["notes"])
    assert evaluator.evaluate(record()).to_dict()["facts"]["patient"]["pregnant"] is False


@pytest.mark.parametrize("text, fires", [("borstvoeding", True), ("zwanger", True), ("geen borstvoeding", False)])
def test_threonate_in_the_eu_with_pregnancy_or_lactation_written_as_text(evaluator, text, fires):
    result = evaluator.evaluate(
        record(
            jurisdiction="EU",
            conditions=[text],
            supplement={"form": "magnesium l-threonate", "dose_mg": 100, "dose_basis": "elemental"},
        )
    ).to_dict()
    assert ("THREONATE_PREG_LACT" in ids(result)) is fires


@pytest.mark.parametrize(
    "conditions, egfr, major",
    [
        (["niertransplantatie"], None, True),
        (["renal transplant recipient"], None, True),
        (["niertransplantatie"], 80, False),  # the eGFR is known: no missing-data finding
        (["kidney stones"], None, False),  # no renal condition: RENAL_DATA_MISSING stays info
    ],
)
def test_kidney_transplant_is_a_renal_condition(evaluator, conditions, egfr, major):
    result = evaluator.evaluate(record(conditions=conditions, egfr_ml_min_1_73m2=egfr)).to_dict()
    missing = finding(result, "RENAL_DATA_MISSING")
    if egfr is not None:
        assert missing is None
    elif major:
        assert missing["severity"] == "major" and result["plan"]["max_elemental_mg_per_day"] == 0
    else:
        assert missing["severity"] == "info" and result["plan"]["max_elemental_mg_per_day"] > 0


@pytest.mark.parametrize(
    "symptoms, present, absent",
    [
        (["diarree sinds start magnesium"], "GI_INTOLERANCE", None),
        (["diarree"], None, "GI_INTOLERANCE"),  # no magnesium taken: ordinary diarrhoea
        (["chronische diarree", "sinds start magnesium"], "GI_INTOLERANCE", None),
        (["lusteloos sinds start magnesium"], "HYPERMAG_SYMPTOMS", None),
        (["lusteloos", "serum magnesium laag sinds januari"], None, "HYPERMAG_SYMPTOMS"),
        (["geen diarree sinds start magnesium"], None, "GI_INTOLERANCE"),
    ],
)
def test_symptoms_that_say_magnesium_is_already_taken(evaluator, symptoms, present, absent):
    result = evaluator.evaluate(record(symptoms=symptoms)).to_dict()
    if present:
        assert present in ids(result)
    if absent:
        assert absent not in ids(result)


# --- combination products and brands ------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, present, absent",
    [
        ("Aldactazide 25/25", {"K_SPARING_DIURETIC", "LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Aldactone 25", {"K_SPARING_DIURETIC"}, {"LOOP_THIAZIDE_DIURETIC"}),
        ("Dytenzide 1dd", {"K_SPARING_DIURETIC", "LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Moduretic mite", {"K_SPARING_DIURETIC", "LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Dyazide", {"K_SPARING_DIURETIC", "LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Hyzaar 50/12,5", {"LOOP_THIAZIDE_DIURETIC"}, {"K_SPARING_DIURETIC"}),
        ("Cozaar 50", set(), {"LOOP_THIAZIDE_DIURETIC"}),
        ("Diovan HCT", {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Diovan 80", set(), {"LOOP_THIAZIDE_DIURETIC"}),
        ("Fosavance 70 mg/2800 IE wekelijks", {"BISPHOSPHONATE_SEPARATION"}, set()),
        ("Zurcal 40 mg", {"PPI_LONG_TERM"}, set()),
        ("Fludex 1,5 mg", {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Torem 10 mg", {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ("ijzersulfaat 200 mg 3dd", {"OTHER_CHELATION_SEPARATION"}, set()),
        ("etacrynezuur", {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Tenoretic", {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ("Tenormin", set(), {"LOOP_THIAZIDE_DIURETIC"}),
    ],
)
def test_combination_products_and_brands(evaluator, written, present, absent):
    result = evaluator.evaluate(record(medications=[written])).to_dict()
    assert present <= ids(result)
    assert not absent & ids(result)
    assert "UNRECOGNIZED_MEDICATION" not in ids(result)


# --- every common drug recognised ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "verapamil 40 mg",
        "docetaxel",
        "leuprolide",
        "oxaliplatin",
        "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray",
        "fluticasone/salmeterol",
        "memantine",
        "diphenhydramine",
        "hydrocortisone cream",
        "nicotine patches",
        "amlodipine 5 mg",
        "Seretide",
        "paracetamol 500 mg zo nodig",
        "Selokeen ZOC 50 mg",
    ],
)
def test_common_drugs_are_recognised_with_no_interaction(evaluator, written):
    result = evaluator.evaluate(record(medications=[written])).to_dict()
    assert "UNRECOGNIZED_MEDICATION" not in ids(result)
    assert all(m["matched_by"] != "unrecognized" for m in result["facts"]["medications"])


@pytest.mark.parametrize("written", ["Zyxorin 5 mg", "verapamill", "docetaxl"])
def test_unknown_names_and_guesses_at_no_interaction_drugs_stay_unrecognised(evaluator, written):
    # no spelling guess at a drug without interaction: a near miss may as well be an unknown, interacting drug
    assert "UNRECOGNIZED_MEDICATION" in ids(evaluator.evaluate(record(medications=[written])).to_dict())


def test_misspelt_interacting_drug_is_still_guessed(meds):
    assert [d.ingredient for d in meds.resolve("doxycyclne 100 mg")] == ["doxycycline"]


# --- coded-only data ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, present, absent",
    [
        ({"rxnorm": "966222"}, {"LEVOTHYROXINE_SEPARATION"}, {"UNRECOGNIZED_MEDICATION"}),  # SCD alone
        ({"rxnorm": "999967"}, {"LOOP_THIAZIDE_DIURETIC"}, {"UNRECOGNIZED_MEDICATION"}),  # 3-ingredient SCD
        ({"rxnorm": "310818"}, {"K_SPARING_DIURETIC", "LOOP_THIAZIDE_DIURETIC"}, set()),
        ({"rxnorm": "1652673"}, {"TETRACYCLINE_SEPARATION"}, set()),
        ({"rxnorm": "897718"}, set(), {"UNRECOGNIZED_MEDICATION"}),  # verapamil: recognised, no interaction
        ({"rxnorm": "1656354"}, set(), {"UNRECOGNIZED_MEDICATION"}),  # sacubitril/valsartan (Synthea CHF module)
        ({"rxnorm": "313096"}, {"K_SPARING_DIURETIC"}, {"UNRECOGNIZED_MEDICATION"}),  # spironolactone 25 mg
        ({"rxnorm": "123456789"}, {"UNRECOGNIZED_MEDICATION"}, set()),
        ({"atc": "A02BC99"}, {"PPI_LONG_TERM"}, {"UNRECOGNIZED_MEDICATION"}),  # under a class prefix
        ({"atc": "C03DA99"}, {"K_SPARING_DIURETIC"}, set()),
        ({"atc": "C03CA99"}, {"LOOP_THIAZIDE_DIURETIC"}, set()),
        ({"atc": "J01AA99"}, {"TETRACYCLINE_SEPARATION"}, set()),
        ({"atc": "H03AA99"}, {"LEVOTHYROXINE_SEPARATION"}, set()),
        ({"atc": "M05BA99"}, {"BISPHOSPHONATE_SEPARATION"}, set()),
        ({"atc": "A12CC99"}, {"CUMULATIVE_MG_SOURCES"}, set()),
        ({"atc": "Z99ZZ99"}, {"UNRECOGNIZED_MEDICATION"}, {"PPI_LONG_TERM"}),
        ({"name": "Pantozol", "atc": "A02BC02"}, {"PPI_LONG_TERM"}, {"UNRECOGNIZED_MEDICATION"}),
        ({"name": "verapamil", "atc": "A02BC99"}, {"PPI_LONG_TERM"}, set()),  # the code's class is kept
    ],
)
def test_medications_coded_only(evaluator, entry, present, absent):
    result = evaluator.evaluate(record(medications=[entry])).to_dict()
    assert present <= ids(result)
    assert not absent & ids(result)


def test_a_fluoroquinolone_known_only_by_its_atc_class_gets_the_class_window(evaluator):
    result = evaluator.evaluate(record(medications=[{"atc": "J01MA99"}])).to_dict()
    assert finding(result, "FLUOROQUINOLONE_SEPARATION")["severity"] == "major"
    assert [[s["drug_before_mg_h"], s["drug_after_mg_h"]] for s in result["plan"]["separations"]] == [[2, 6]]
    cipro = evaluator.evaluate(
        record(medications=["ciprofloxacin"])
    ).to_dict()  # its own window, not the class default too
    assert [[s["drug_before_mg_h"], s["drug_after_mg_h"]] for s in cipro["plan"]["separations"]] == [[2, 6]]
    assert len(cipro["plan"]["separations"]) == 1


@pytest.mark.parametrize(
    "field, entry, present, absent",
    [
        ("symptoms", {"snomed": "128613002"}, "RED_FLAG_SYMPTOMS", None),  # seizure disorder
        ("conditions", {"snomed": "84757009"}, "RED_FLAG_SYMPTOMS", None),  # epilepsy
        ("conditions", {"snomed": "703151001"}, None, "RED_FLAG_SYMPTOMS"),  # history of single seizure
        ("conditions", {"snomed": "703151001", "name": "History of single seizure"}, None, "RED_FLAG_SYMPTOMS"),
        ("conditions", {"snomed": "46177005"}, "RENAL_SEVERE", None),  # end-stage renal disease
        ("conditions", {"snomed": "72892002"}, "PREGNANCY", None),  # normal pregnancy
        ("conditions", {"snomed": "74400008"}, "GI_OBSTRUCTION", None),  # appendicitis: acute GI condition
        ("conditions", {"snomed": "38341003"}, None, "GI_OBSTRUCTION"),  # hypertension: recognised, no rule
        ("conditions", {"snomed": "1"}, None, "RED_FLAG_SYMPTOMS"),  # unknown code: no concept, no reject
        ("conditions", {"name": "epilepsie"}, "RED_FLAG_SYMPTOMS", None),
    ],
)
def test_conditions_coded_only(evaluator, field, entry, present, absent):
    result = evaluator.evaluate(record(**{field: [entry]})).to_dict()
    assert result["status"] == "ok"
    if present:
        assert present in ids(result)
    if absent:
        assert absent not in ids(result)


def test_ckd_coded_only_without_egfr_is_major(evaluator):
    result = evaluator.evaluate(record(conditions=[{"snomed": "431856006"}], egfr_ml_min_1_73m2=None)).to_dict()
    assert finding(result, "RENAL_DATA_MISSING")["severity"] == "major"
    concept = result["facts"]["concepts"][0]
    assert concept["concepts"] == ["ckd"] and concept["matched_by"] == ["snomed"]
    assert concept["text"] == "SNOMED CT 431856006"


@pytest.mark.parametrize(
    "entry, reason",
    [
        ({"snomed": ""}, "non-empty text"),
        ({"snomed": 128613002}, "non-empty text"),
        ({"code": "128613002"}, "unknown keys"),
        ({}, "expected non-empty text"),
        ("", "expected non-empty text"),
    ],
)
def test_malformed_condition_objects_are_rejected(evaluator, entry, reason):
    result = evaluator.evaluate(record(conditions=[entry])).to_dict()
    assert result["status"] == "rejected"
    assert reason in {e["field"]: e["reason"] for e in result["errors"]}["conditions[0]"]


# --- the checker guards the new vocabulary keys --------------------------------------------------------


def _v2():
    return json.loads(rs.latest_published().read_text("utf-8"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v["concepts"]["seizure"]["context_names"].append({"name": "aanval"}), "needs requires_any"),
        (lambda v: v["concepts"]["seizure"].update(implies=["no_such_concept"]), "implies unknown concept"),
        (lambda v: v["concepts"]["pregnancy"].update(patient_fact="age_years"), "not a boolean patient fact"),
        (lambda v: v["concepts"]["seizure"].update(snomed=["12a"]), "must be digits"),
        (lambda v: v["concepts"]["tetany"].update(snomed=["128613002"]), "already names seizure"),
        (lambda v: v["drugs"]["verapamil"]["rxnorm"].append("966222"), "already names drugs.levothyroxine"),
        (lambda v: v["atc_classes"].update(A02BA=["h2_blocker"]), "not used by any drug"),
        (lambda v: v["atc_classes"].update(XYZ=["ppi"]), "not an ATC class prefix"),
        (lambda v: v["concepts"]["seizure"].update(requires=["x"]), "unknown key 'requires'"),
    ],
)
def test_checker_refuses_bad_codes_and_contexts(change, message):
    data = _v2()
    data["status"] = "draft"
    change(data["vocabulary"])
    errors = [str(e) for e in ruleset_check.check_data(data)]
    assert any(message in e for e in errors), errors


def test_v2_vocabulary_passes_the_checker():
    data = _v2()
    data["status"] = "draft"
    assert [str(e) for e in ruleset_check.check_data(data)] == []


# --- real Synthea medication lines ---------------------------------------------------------------------


def _synthea_medication_lines():
    lines = []
    for path in sorted(EXTERNAL.glob("*.json")):
        entries = json.loads(path.read_text("utf-8"))["entry"]
        by_url = {e.get("fullUrl"): e["resource"] for e in entries}
        for e in entries:
            r = e["resource"]
            if r["resourceType"] not in ("MedicationRequest", "MedicationStatement"):
                continue
            concept = r.get("medicationCodeableConcept")
            if concept is None:
                concept = by_url.get(r.get("medicationReference", {}).get("reference"), {}).get("code", {})
            coding = next((c for c in concept.get("coding", []) if "rxnorm" in c.get("system", "")), {})
            lines.append((concept.get("text") or coding.get("display") or "", coding.get("code", "")))
    return lines


@pytest.mark.skipif(not EXTERNAL.exists(), reason="../shared/external/fhir is not beside the checkout")
@pytest.mark.parametrize("coded_only", [False, True])
def test_share_of_synthea_medication_lines_still_unrecognised(meds, coded_only, capsys):
    lines = _synthea_medication_lines()
    assert len(lines) > 150  # every MedicationRequest of the 8 bundles, whatever its status
    unknown = []
    for text, code in lines:
        entry = {"rxnorm": code} if coded_only else {"name": text, "rxnorm": code}
        if any(d.method == "unrecognized" for d in meds.resolve(copy.deepcopy(entry))):
            unknown.append(text)
    with capsys.disabled():
        label = "RxNorm code only" if coded_only else "name and RxNorm code"
        names = sorted(set(unknown))
        print(f"\nSynthea medication lines unrecognised ({label}): {len(unknown)} of {len(lines)}: {names}")
    assert len(unknown) / len(lines) <= 0.02


def test_pregnancy_from_text_keeps_the_ckd_epi_caveat(evaluator):
    creatinine = {"egfr_ml_min_1_73m2": None, "serum_creatinine": {"value": 0.8, "unit": "mg/dL"}}
    notes = evaluator.evaluate(record(conditions=["zwangerschap"], **creatinine)).to_dict()["facts"]["notes"]
    assert any("not validated in pregnancy" in n for n in notes)
    assert not any("pregnan" in n for n in evaluator.evaluate(record(**creatinine)).to_dict()["facts"]["notes"])


def test_a_coded_condition_shows_its_code(evaluator):
    (concept,) = evaluator.evaluate(record(conditions=[{"snomed": "72892002", "name": "Normal pregnancy"}])).to_dict()[
        "facts"
    ]["concepts"]
    assert concept["snomed"] == "72892002" and concept["text"] == "Normal pregnancy"
    (plain,) = evaluator.evaluate(record(conditions=["Normal pregnancy"])).to_dict()["facts"]["concepts"]
    assert "snomed" not in plain


def test_every_drug_entry_round_trips_through_the_rule_editors_drug_form():
    """The structured drug form shows and saves every v2 drug entry unchanged (names, classes, codes, note)."""
    from werkzeug.datastructures import MultiDict

    from review_ui import create_app
    from review_ui.ruleset_forms import DrugForm, drug_from_form, drug_to_form

    data = _v2()
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    changed = []
    with app.test_request_context():
        for key, drug in data["vocabulary"]["drugs"].items():
            shown = DrugForm(formdata=None)
            drug_to_form(shown, key, drug, data["sources"])
            fields = ("key", "names", "classes", "atc", "rxnorm", "note")
            posted = MultiDict(
                [(f, getattr(shown, f).data) for f in fields] + [("sources", s) for s in drug["sources"]]
            )
            form = DrugForm(formdata=posted)
            form.sources.choices = shown.sources.choices
            if not form.validate() or drug_from_form(form, drug) != (key, drug):
                changed.append((key, form.errors))
    assert len(data["vocabulary"]["drugs"]) > 450
    assert changed == []
