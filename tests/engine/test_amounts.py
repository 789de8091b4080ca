"""Magnesium already taken (issue 11, REFERENCE §1.5): read from the medication list, subtracted from the cap."""

import pytest

from engine import amounts
from engine import ruleset as rs
from engine.lexicon import PhraseIndex
from engine.medications import ResolvedDrug
from tests.helpers import SYNTHEA, finding, ids, record

EU_200 = {"jurisdiction": "EU", "supplement": {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental"}}


def _eu(*medications: str, **changes):
    return record(medications=list(medications), **{**EU_200, **changes})


# (medication as written, elemental Mg per day read (None: unknown), EU cap for a 200 mg request, DOSE_ABOVE_UL_EU)
TRUE_POSITIVES = [
    ("multivitamine (100 mg magnesium) 1dd", 100, 150, True),
    ("magnesium 150 mg (elementair) 1x daags", 150, 100, True),
    ("magnesiumcitraat 2x daags 200 mg", 64.8, 185, True),  # salt weight x 16.2 % (citrate: highest fraction)
    ("Magnesiumoxide 500 mg 1-0-1", 603, 0, True),  # 2 x 500 mg MgO x 60.3 %: above the UL on its own
    ("magnesium 100 mg 3dd1", 300, 0, True),
    ("Magnesium bisglycinaat 1,5 g per dag", 211.5, 38, True),  # decimal comma, grams, glycinate 14.1 %
    ("magnesium citrate 100 mg elemental twice daily", 200, 50, True),
    ("Magnesium 50 mg bid", 100, 150, True),
    ("magnesium 25 mg 2 x per dag", 50, 200, False),  # 200 + 50 = 250: at the limit, not above it
    ("magnesium 100 mg 1x per week", 14.3, 235, False),
    ("Calcium 500 mg + magnesium 250 mg 1dd", 250, 0, True),  # the 500 mg is calcium, not magnesium
    ("multivitamine calcium 500 mg 50 mg magnesium 1dd", 50, 200, False),  # the "mg" of 500 mg is not Mg
    ("Maalox 3dd10ml", 500.4, 0, True),  # 30 ml x 40 mg Mg(OH)2/ml x 41.7 % [SmPC]
    ("Rennie 3dd2", 138.2, 111, True),  # 6 tablets x 80 mg heavy MgCO3 x 28.8 % [SmPC]
    ("Milk of magnesia 15 ml 1dd", 519.2, 0, True),
    ("magnesiumhydroxide suspensie 1 eetlepel 's avonds", 519.2, 0, True),
    ("Mylanta 5 ml once daily", 166.8, 83, True),
]
FALSE_ALARMS = [
    ("esomeprazole magnesium 20 mg 1dd", None, 250, False),  # a PPI salt, not a magnesium source (§4 note)
    ("Nexium 40 mg", None, 250, False),
    ("Paracetamol 500 mg 3dd1", None, 250, False),
    ("Omeprazol 20 mg 1dd", None, 250, False),
]
UNKNOWN_AMOUNTS = [
    "multivitamine 1000 mg 1dd",  # 1000 mg is the tablet, not its magnesium
    "multivitamine calcium 500 mg 1000 mg vitamine C 1dd",  # the "mg" of 500 mg is a unit, not the element Mg
    "Centrum 1dd",
    "Maalox zo nodig",  # as needed, no maximum a day
    "Maalox 3dd1",  # tablets: no standard content per tablet in the table
    "magnesium citrate 2 tablets twice daily",  # no strength written
    "Epsom salt 1 tbsp",
]


@pytest.mark.parametrize("text, per_day, cap, above", TRUE_POSITIVES + FALSE_ALARMS)
def test_magnesium_already_taken_is_subtracted(evaluator, text, per_day, cap, above):
    result = evaluator.evaluate(_eu(text)).to_dict()
    patient = result["facts"]["patient"]
    if per_day is None:
        assert "other_mg_elemental_mg_per_day" not in patient
        assert "CUMULATIVE_MG_SOURCES" not in ids(result)
    else:
        assert patient["other_mg_elemental_mg_per_day"] == pytest.approx(per_day, abs=0.01)
        assert "CUMULATIVE_MG_SOURCES" in ids(result)
    assert patient["other_mg_amount_unknown"] is False
    assert result["plan"]["max_elemental_mg_per_day"] == cap
    assert ("DOSE_ABOVE_UL_EU" in ids(result)) is above


@pytest.mark.parametrize("text", UNKNOWN_AMOUNTS)
def test_an_amount_that_cannot_be_known_is_said_and_the_cap_assumes_none(evaluator, text):
    result = evaluator.evaluate(_eu(text)).to_dict()
    patient = result["facts"]["patient"]
    assert patient["other_mg_amount_unknown"] is True
    assert "other_mg_elemental_mg_per_day" not in patient
    cumulative = finding(result, "CUMULATIVE_MG_SOURCES")
    assert cumulative is not None and f"'{text}' cannot be known" in cumulative["message"]
    assert result["plan"]["max_elemental_mg_per_day"] == 250
    assert result["plan"]["cap_assumes"].startswith(f"The cap assumes no magnesium was taken from '{text}'")
    assert "DOSE_ABOVE_UL_EU" not in ids(result)


@pytest.mark.parametrize(
    "text, unreadable",
    [
        ("magnesium citrate 2 tablets twice daily", True),  # tablets without a strength
        ("Maalox 3dd1", True),  # a number of Maalox tablets: no standard content per tablet
        ("multivitamine 1000 mg 1dd", True),  # an amount, but not of magnesium
        ("Epsom salt 1 tbsp", True),
        ("Centrum 1dd", False),  # nothing written to read: CUMULATIVE_MG_SOURCES says the amount is unknown
        ("Maalox zo nodig", False),
        ("multivitamine (100 mg magnesium) 1dd", False),  # read
    ],
)
def test_another_products_unreadable_amount_is_dose_unreadable(evaluator, text, unreadable):
    result = evaluator.evaluate(_eu(text)).to_dict()
    assert result["facts"]["patient"]["other_mg_dose_unreadable"] is unreadable
    found = finding(result, "DOSE_UNREADABLE")
    assert (found is not None) is unreadable
    if found:
        assert f"'{text}' could not be read as milligrams of magnesium" in found["message"]


def test_the_arithmetic_is_shown_in_the_evidence_and_the_plan(evaluator):
    text = "multivitamine (100 mg magnesium) 1dd"
    result = evaluator.evaluate(_eu(text)).to_dict()
    arithmetic = "UL 250 − 100 mg from 'multivitamine (100 mg magnesium) 1dd' = 150 mg/day"
    assert result["plan"]["cap_arithmetic"] == arithmetic
    shown = [
        item
        for f in result["findings"]
        for entry in f["evidence"]
        for item in entry["facts"]
        if item.get("arithmetic") == arithmetic
    ]
    assert {item["fact"] for item in shown} == {
        "patient.other_mg_elemental_mg_per_day",
        "patient.total_supplemental_mg_per_day",
    }
    assert shown[0]["read_from"][0]["read_as"] == "100 mg elemental × once a day (1dd)"
    above = finding(result, "DOSE_ABOVE_UL_EU")
    assert above is not None and "200 mg/day plus 100 mg/day" in above["message"]


def test_several_products_add_up_and_each_is_named(evaluator):
    result = evaluator.evaluate(_eu("Rennie 3dd2", "magnesium 50 mg bid")).to_dict()
    assert result["facts"]["patient"]["other_mg_elemental_mg_per_day"] == pytest.approx(238.2)
    assert result["plan"]["cap_arithmetic"] == (
        "UL 250 − 138.2 mg from 'Rennie 3dd2' − 100 mg from 'magnesium 50 mg bid' = 11 mg/day"
    )


def test_magnesium_already_taken_alone_above_the_limit_says_so(evaluator):
    result = evaluator.evaluate(_eu("Milk of magnesia 15 ml 1dd", supplement=None)).to_dict()
    above = finding(result, "DOSE_ABOVE_UL_EU")
    assert above is not None and "above the EU upper limit of 250 mg/day on its own" in above["message"]
    assert result["plan"]["max_elemental_mg_per_day"] == 0
    assert result["plan"]["supplement"] == "no"


@pytest.mark.parametrize(
    "jurisdiction, age, text, cap, above",
    [
        ("US", 45, "multivitamin (100 mg magnesium) once daily", 250, False),  # 200 + 100 <= 350: not above
        ("US", 45, "magnesium 200 mg 1dd", 150, True),
        ("US", 6, "magnesium 20 mg 1dd", 90, True),  # 4-8 y UL 110
        ("US", 6, "Omeprazol 20 mg 1dd", 110, True),  # the 200 mg request alone is above 110
    ],
)
def test_us_upper_limits_count_magnesium_already_taken(evaluator, jurisdiction, age, text, cap, above):
    result = evaluator.evaluate(record(jurisdiction=jurisdiction, age_years=age, medications=[text])).to_dict()
    assert result["plan"]["max_elemental_mg_per_day"] == cap
    assert ("DOSE_ABOVE_UL_US" in ids(result)) is above


# --- the reader itself, for texts whatever resolves them ---------------------------------------------


@pytest.fixture(scope="module")
def reader():
    ruleset = rs.load(rs.RULESETS_DIR / "magnesium" / "v2.json")
    forms = PhraseIndex((n, k) for k, f in ruleset.vocabulary.forms.items() for n in [k, *f.get("names", [])])
    return amounts.AmountReader(ruleset, forms)


MAGNESIUM = ResolvedDrug("magnesium", ("magnesium_source",), "none", "", "exact")


@pytest.mark.parametrize(
    "frequency, per_day",
    [
        ("1dd", 100),
        ("2dd", 200),
        ("3dd1", 300),
        ("3dd2", 600),
        ("1-0-1", 200),
        ("1-1-1-1", 400),
        ("2 x per dag", 200),
        ("2x daags", 200),
        ("3 keer per dag", 300),
        ("tweemaal daags", 200),
        ("twice daily", 200),
        ("bid", 200),
        ("tid", 300),
        ("3 times a day", 300),
        ("'s avonds", 100),
        ("2 tabletten 2dd", 400),
        ("1x per week", 14.3),
        ("2 per dag", 200),
        ("1 tablet per dag", 100),
        ("", 100),  # no frequency written: counted once a day (and said so)
        ("zo nodig, max 3dd", 300),
        ("zo nodig", None),
        ("as needed", None),
    ],
)
def test_frequencies_as_written(reader, frequency, per_day):
    reading = reader.read(f"magnesium 100 mg {frequency}", [MAGNESIUM])
    assert reading is not None
    if per_day is None:
        assert reading.elemental_mg_per_day is None
    else:
        assert reading.elemental_mg_per_day == pytest.approx(per_day, abs=0.01)
    assert (reading.assumed == amounts.ASSUMED_ONCE) is (frequency == "")


@pytest.mark.parametrize(
    "text, per_day",
    [
        ("Mg 150mg", 150),  # "Mg" the element, "mg" the unit
        ("100 mg magnesium", 100),
        ("magnesium 0,1 g", 100),
        ("magnesium 4 mmol 1dd", 97.2),  # 1 mmol = 24.3 mg (REFERENCE §2)
        ("magnesiumchloride 500 mg", 127.5),  # ambiguous hydrate: anhydrous 25.5 %, the highest
        ("magnesium sulfaat 1 g", 202),
        ("magnesium citraat 500 mg elementair", 500),  # "elementair": the amount is elemental
        ("Magnesium 250 mg / 500 mg", 500),  # two amounts for one product: the larger
        ("magnesiumcitraat 200 mg (= 32 mg magnesium)", 32.4),  # salt 200 mg x 16.2 % vs the label's 32 mg
    ],
)
def test_amounts_as_written(reader, text, per_day):
    reading = reader.read(text, [MAGNESIUM])
    assert reading is not None and reading.elemental_mg_per_day == pytest.approx(per_day, abs=0.01)


@pytest.mark.parametrize(
    "text, drug",
    [
        ("esomeprazole magnesium 20 mg", ResolvedDrug("esomeprazole", ("ppi",), "none", "", "exact")),
        ("Magnesium 500 mg", ResolvedDrug("Magnesium 500 mg", ("unrecognized",), "none", "", "unrecognized")),
    ],
)
def test_only_resolved_magnesium_products_are_read(reader, text, drug):
    assert reader.read(text, [drug]) is None


# --- as an EHR sends it: a Synthea bundle with magnesium products added as MedicationRequests ----------


def test_magnesium_products_in_a_fhir_bundle_are_counted(evaluator):
    import copy
    import json

    from engine.fhir import bundle_to_record

    folder = SYNTHEA
    if not folder.exists():
        pytest.skip("../shared/external/fhir is not beside the checkout")
    bundle = json.loads(next(folder.glob("Gayla*.json")).read_text("utf-8"))
    template = next(
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest" and e["resource"]["status"] == "active"
    )
    for i, text in enumerate(["Magnesium Oxide 400 MG Oral Tablet", "Multivitamin tablet"]):
        entry = copy.deepcopy(template)
        entry["resource"]["id"] = f"mg-{i}"
        entry["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-00000000000{i}"
        entry["resource"]["medicationCodeableConcept"] = {"text": text}
        bundle["entry"].append(entry)
    result = evaluator.evaluate(bundle_to_record(bundle)).to_dict()
    patient = result["facts"]["patient"]
    assert patient["other_mg_elemental_mg_per_day"] == pytest.approx(241.2)  # 400 mg MgO x 60.3 %, once a day
    oxide = next(r for r in result["facts"]["other_magnesium"] if r["as_written"].startswith("Magnesium Oxide"))
    assert oxide["assumed"] == amounts.ASSUMED_ONCE
    assert patient["other_mg_amount_unknown"] is True  # the multivitamin's magnesium is not written
    ul = 250 if patient["jurisdiction"] == "EU" else 350
    assert result["plan"]["max_elemental_mg_per_day"] == ul - 242  # whole mg, rounded down: floor(ul - 241.2)
