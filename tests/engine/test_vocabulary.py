"""Drug names as patients and EHRs write them, and conditions/symptoms in English and Dutch."""

import pytest

from engine import ruleset as rs
from engine.conditions import ConceptResolver
from engine.lexicon import PhraseIndex, fold
from engine.medications import MedicationResolver


@pytest.fixture(scope="module")
def voc():
    return rs.load().vocabulary


@pytest.fixture(scope="module")
def meds(voc):
    return MedicationResolver(voc)


@pytest.fixture(scope="module")
def concepts(voc):
    return ConceptResolver(voc)


@pytest.mark.parametrize(
    "written, ingredient, method",
    [
        ("Doxycyclin 100mg 2dd", "doxycycline", "exact"),  # listed misspelling
        ("doxycyclne 100 mg", "doxycycline", "spelling"),  # unlisted: spelling similarity
        ("levotiroxine 0,1 mg 1dd", "levothyroxine", "exact"),
        ("Omeprazol 20 mg 1dd", "omeprazole", "exact"),
        ("ciprofloxacine 500mg", "ciprofloxacin", "exact"),
        ("Euthyrox 75 mcg", "levothyroxine", "exact"),
        ("Synthroid", "levothyroxine", "exact"),
        ("NEXIUM 40MG", "esomeprazole", "exact"),
        ("esomeprazole magnesium 20 mg", "esomeprazole", "exact"),
        ("Lasix 40 mg 1x daily", "furosemide", "exact"),
        ("Lanoxin 0.125mg", "digoxin", "exact"),
        ("Aldactone 25", "spironolactone", "exact"),
        ("Fosamax 70 mg weekly", "alendronate", "exact"),
        ("Promacta", "eltrombopag", "exact"),
        ("Revolade", "eltrombopag", "exact"),
        ("Neurontin 300 mg 3dd", "gabapentin", "exact"),
        ("CellCept 500", "mycophenolate", "exact"),
        ("Isentress 400 mg 2dd", "raltegravir", "exact"),
    ],
)
def test_medication_names(meds, written, ingredient, method):
    (drug,) = [d for d in meds.resolve(written) if d.ingredient == ingredient]
    assert drug.method == method


def test_esomeprazole_magnesium_is_not_a_magnesium_source(meds):
    drugs = meds.resolve("esomeprazole magnesium 20 mg")
    assert [d.ingredient for d in drugs] == ["esomeprazole"]
    assert "magnesium_source" not in drugs[0].classes


@pytest.mark.parametrize(
    "product, ingredients",
    [
        ("Juluca", {"dolutegravir", "rilpivirine"}),
        ("Biktarvy", {"bictegravir"}),
        ("Triumeq", {"dolutegravir"}),
        ("Maalox", {"magnesium hydroxide"}),
    ],
)
def test_combination_products_resolve_to_their_ingredients(meds, product, ingredients):
    assert ingredients <= {d.ingredient for d in meds.resolve(product)}


@pytest.mark.parametrize(
    "entry, ingredient",
    [
        ({"rxnorm": "2551"}, "ciprofloxacin"),
        ({"name": "Tablet", "atc": "J01AA02"}, "doxycycline"),
        ({"name": "Pantozol", "rxnorm": "999999999"}, "pantoprazole"),
    ],
)
def test_coded_medications(meds, entry, ingredient):
    assert meds.resolve(entry)[0].ingredient == ingredient


@pytest.mark.parametrize("written", ["Zyxorin 5 mg", "xq", {"rxnorm": "000"}])
def test_unrecognised_medication_is_kept_not_dropped(meds, written):
    (drug,) = meds.resolve(written)
    assert drug.classes == ("unrecognized",)


@pytest.mark.parametrize(
    "text, kind, concept",
    [
        ("hartfalen", "condition", "heart_failure"),
        ("end-stage kidney disease on hemodialysis", "condition", "dialysis"),
        ("end-stage kidney disease on hemodialysis", "condition", "kidney_failure"),
        ("chronische nierschade", "condition", "ckd"),
        ("Nierinsufficientie", "condition", "ckd"),
        ("AV-blok", "condition", "cardiac_conduction_disorder"),
        ("bradycardie", "condition", "cardiac_conduction_disorder"),
        ("alcoholisme", "condition", "alcohol_use_disorder"),
        ("spierkrampen", "symptom", "muscle_cramps"),
        ("diarree", "symptom", "diarrhoea"),
        ("hartkloppingen", "symptom", "palpitations"),
        ("epileptische aanval", "symptom", "seizure"),
        ("lage bloeddruk", "symptom", "hypotension"),
    ],
)
def test_condition_and_symptom_terms(concepts, text, kind, concept):
    reading = concepts.read(text, kind)
    assert concept in {c.concept for c in reading.concepts}


@pytest.mark.parametrize(
    "text, concept",
    [("no seizures", "seizure"), ("geen diarree", "diarrhoea"), ("denies palpitations", "palpitations")],
)
def test_negated_mentions_are_not_matched(concepts, text, concept):
    reading = concepts.read(text, "symptom")
    assert concept not in {c.concept for c in reading.concepts}
    assert concept in reading.negated


def test_longest_phrase_wins():
    index = PhraseIndex([("magnesium", "mg"), ("esomeprazole magnesium", "eso")])
    assert [m.key for m in index.find("Esomeprazole Magnesium 20mg")] == ["eso"]


def test_fold_strips_accents():
    assert fold("Nierinsufficiëntie") == "nierinsufficientie"


def test_vocabulary_names_are_unique_and_lower_case(voc):
    seen = {}
    for section in (voc.drugs, voc.products):
        for key, entry in section.items():
            for name in [key, *entry.get("names", [])]:
                assert name == name.lower()
                assert seen.setdefault(name, key) == key


@pytest.mark.parametrize("text", ["renal insult", "bij toeval ontdekt", "metformin one a day"])
def test_words_that_would_be_false_alarms_are_not_vocabulary(concepts, meds, text):
    assert not concepts.read(text, "condition").concepts
    assert "possible_magnesium_source" not in {c for d in meds.resolve(text) for c in d.classes}


def test_a_misspelling_between_two_entries_is_not_guessed():
    index = PhraseIndex([("hypertension", "hypertension"), ("hypotension", "hypotension")])
    assert [m.key for m in index.find("hypertenion")] == ["hypertension"]  # clearly closer to one
    assert index.find("hyptension") == []  # as close to both: no guess
