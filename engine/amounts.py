"""Magnesium already taken: amounts and frequencies read from medication text (REFERENCE §1.5, §2, §6).

Which entries carry magnesium comes from their resolution (classes magnesium_source and
possible_magnesium_source, engine/medications.py); this module reads how much. The words it
recognises (units, frequencies, "elemental", "as needed") and the standard content of antacids and
laxatives are ruleset data (`vocabulary.amount_terms`, `vocabulary.magnesium_content`); the
grammar ("3dd1", "1-0-1", "2 x per dag", "1,5 g") is code. An amount that cannot be known is said
to be unknown, never guessed as zero: the plan then says the cap assumes none was taken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from engine import units
from engine.lexicon import PhraseIndex, fold
from engine.medications import ResolvedDrug
from engine.ruleset import Ruleset
from engine.vocabulary import PLAN_CONTRACT_SINCE_VERSION

SOURCE_CLASSES = ("magnesium_source", "possible_magnesium_source")
_SOURCE_CLASS_SET = frozenset(SOURCE_CLASSES)
MG_PER_MMOL = units.MG_MOLAR_MASS_G_MOL  # mg per mmol of magnesium, declared once in engine.units [REFERENCE §6]
_NUM = r"\d+(?:[.,]\d+)?"
_MASS_UNITS = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gr": 1000.0, "gram": 1000.0}
_MASS_UNITS.update({"grams": 1000.0, "mcg": 0.001, "microgram": 0.001, "micrograms": 0.001})
_MASS = rf"({_NUM})\s*(mg|milligrams?|grams?|gr|g|mcg|micrograms?|mmol)\b"
_SEPARATORS = frozenset("+,;&") | {"en", "and", "met", "with", "plus"}
_WINDOW = 3  # words either side of an amount that can name what it is an amount of


def carries_magnesium(drug: ResolvedDrug) -> bool:
    """Whether a resolved drug is in a magnesium source class (one set test: run for every medication)."""
    return not _SOURCE_CLASS_SET.isdisjoint(drug.classes)


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def _fmt(value: float) -> str:
    return format(round(value, 1), "g")


@dataclass(frozen=True)
class Reading:
    """How much magnesium one medication entry adds per day, and how that was read."""

    text: str
    ingredients: tuple[str, ...]
    elemental_mg_per_day: float | None  # None: the amount cannot be known
    read_as: str
    source: str = "text"  # text, content (vocabulary.magnesium_content) or unknown
    assumed: str = ""  # an assumption made while reading (e.g. once a day when no frequency is written)
    unreadable: bool = False  # an amount is written (tablets, ml, mg) but cannot be read as mg of magnesium

    def summary(self) -> dict[str, Any]:
        """The reading as shown in the output facts and the evidence."""
        out: dict[str, Any] = {
            "as_written": self.text,
            "ingredients": list(self.ingredients),
            "elemental_mg_per_day": self.elemental_mg_per_day,
            "read_as": self.read_as,
            "source": self.source,
        }
        if self.assumed:
            out["assumed"] = self.assumed
        if self.unreadable:
            out["unreadable"] = True
        return out


@dataclass(frozen=True)
class OtherMagnesium:
    """Every magnesium product on the medication list, with the day total that could be read."""

    readings: tuple[Reading, ...]

    @cached_property
    def known_mg_per_day(self) -> float:
        """Elemental Mg per day from the entries whose amount is known."""
        return sum(r.elemental_mg_per_day or 0.0 for r in self.readings)

    @cached_property
    def unknown(self) -> tuple[Reading, ...]:
        """Entries whose amount cannot be known."""
        return tuple(r for r in self.readings if r.elemental_mg_per_day is None)

    def facts(self, requested_mg: float | None) -> dict[str, Any]:
        """Patient facts: other_mg_elemental_mg_per_day (absent when none), other_mg_amount_unknown, the total."""
        if not self.readings:
            none: dict[str, Any] = {"other_mg_amount_unknown": False, "other_mg_dose_unreadable": False}
            if requested_mg is not None:
                none["total_supplemental_mg_per_day"] = units.round_fact(requested_mg)
            return none
        unreadable = [r for r in self.readings if r.unreadable]
        out: dict[str, Any] = {
            "other_mg_amount_unknown": bool(self.unknown),
            "other_mg_dose_unreadable": bool(unreadable),
        }
        if unreadable:
            out["other_mg_unreadable_text"] = ", ".join(f"'{r.text}'" for r in unreadable)
        known = round(self.known_mg_per_day, 1)
        if known > 0:
            out["other_mg_elemental_mg_per_day"] = known
        if self.unknown:
            out["other_mg_unknown_text"] = ", ".join(f"'{r.text}'" for r in self.unknown)
        if requested_mg is not None or known > 0:
            out["total_supplemental_mg_per_day"] = units.round_fact((requested_mg or 0.0) + known)
        return out

    def arithmetic(self, ul_mg: float) -> str:
        """'UL 250 − 100 mg from '…' = 150 mg/day': the cap worked out from the upper limit."""
        parts = [f"UL {_fmt(ul_mg)}"]
        parts += [
            f"− {_fmt(r.elemental_mg_per_day)} mg from '{r.text}'" for r in self.readings if r.elemental_mg_per_day
        ]
        allowed = allowed_mg(ul_mg, self.known_mg_per_day)
        text = " ".join(parts) + f" = {_fmt(allowed)} mg/day"
        if self.known_mg_per_day > ul_mg:
            text += " (the magnesium already taken is above the upper limit on its own)"
        return text

    def assumption(self) -> str | None:
        """What the cap assumes about entries whose amount is unknown, or None."""
        if not self.unknown:
            return None
        named = ", ".join(f"'{r.text}'" for r in self.unknown)
        return f"The cap assumes no magnesium was taken from {named} (amount unknown): check the label and subtract it."


def allowed_mg(ul_mg: float, other_mg: float) -> float:
    """Supplemental magnesium still allowed: UL minus what is already taken, never below 0, whole mg down."""
    return float(max(0, math.floor(ul_mg - other_mg + 1e-9)))


class AmountReader:
    """Reads magnesium amounts from medication entries with one ruleset's terms and content table."""

    def __init__(self, ruleset: Ruleset, forms: PhraseIndex):
        voc = ruleset.raw.get("vocabulary", {})
        terms: dict[str, Any] = voc.get("amount_terms", {})
        self.content: dict[str, dict[str, Any]] = voc.get("magnesium_content", {})
        self.fractions = {k: float(f["elemental_fraction"]) for k, f in ruleset.vocabulary.forms.items()}
        self.forms = forms
        self.elemental = _words_re(terms.get("elemental", []))
        self.magnesium_words = {fold(w) for w in terms.get("magnesium_words", [])}
        self.as_needed = _words_re(terms.get("as_needed", []))
        self.per_day = _alternation(terms.get("per_day", []))
        self.times = _alternation(terms.get("times", []))
        self.per_week = _alternation(terms.get("per_week", []))
        phrases = [(w, float(n)) for n, words in terms.get("times_per_day", {}).items() for w in words]
        self.daily_words = [(_words_re([w]), n) for w, n in sorted(phrases, key=lambda p: -len(p[0]))]
        self.units = {unit: _alternation(words) for unit, words in terms.get("units", {}).items()}
        self.spoons = {fold(k): float(v) for k, v in terms.get("spoon_ml", {}).items()}
        self._cache: dict[tuple[str, tuple[str, ...]], Reading] = {}

    def read(self, entry: str | dict[str, Any], drugs: list[ResolvedDrug]) -> Reading | None:
        """The magnesium one entry adds per day, or None when the entry names no magnesium product."""
        sources = [d for d in drugs if carries_magnesium(d)]
        if not sources:
            return None
        text = entry if isinstance(entry, str) else str(entry.get("name") or entry.get("rxnorm") or entry.get("atc"))
        key = (text, tuple(sorted({f"{d.ingredient}|{d.product}|{','.join(d.classes)}" for d in drugs})))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= 10_000:
                self._cache.clear()
            found = self._cache[key] = self._read(text, drugs, sources)
        return found

    def _read(self, text: str, drugs: list[ResolvedDrug], sources: list[ResolvedDrug]) -> Reading:
        ingredients = tuple(dict.fromkeys(d.ingredient for d in sources))
        t = fold(text)
        frequency, how_often, assumed = self.frequency(t)
        if frequency is None:
            return Reading(text, ingredients, None, how_often, "unknown")
        # a single-ingredient magnesium product: every amount written is magnesium (or its salt)
        whole_entry = all(d.product == "none" and "magnesium_source" in d.classes for d in drugs)
        amount = self._stated_amount(t, sources, whole_entry)
        count, count_text = self._count(t)
        if amount is not None:
            mg, basis = amount
            per_day = mg * (count or 1.0) * frequency
            units = f" × {_fmt(count)}" if count else ""
            read = f"{basis}{units} × {how_often}"
            return Reading(text, ingredients, round(per_day, 1), read, "text", assumed)
        reading = self._from_content(
            text, t, drugs, sources, ingredients, frequency, how_often, assumed, count, count_text
        )
        if reading.elemental_mg_per_day is None and (count or re.search(_MASS, t) or self._volume(t) is not None):
            return replace(reading, unreadable=True)  # DOSE_UNREADABLE: "another product's amount" (REFERENCE §8)
        return reading

    def _from_content(
        self,
        text: str,
        t: str,
        drugs: list[ResolvedDrug],
        sources: list[ResolvedDrug],
        ingredients: tuple[str, ...],
        frequency: float,
        how_often: str,
        assumed: str,
        count: float | None,
        count_text: str,
    ) -> Reading:
        """Standard content per unit (vocabulary.magnesium_content) times the units taken."""
        keys = [d.product for d in drugs if d.product != "none"] + [d.ingredient for d in sources]
        entry = next((self.content[k] for k in keys if k in self.content), None)
        if entry is None:
            return Reading(text, ingredients, None, "no amount written and no standard content known", "unknown")
        per_unit: dict[str, dict[str, Any]] = entry.get("per_unit", {})
        volume = self._volume(t)
        if volume is not None:
            if "ml" not in per_unit:
                return Reading(text, ingredients, None, "a volume is written but no content per ml is known", "unknown")
            unit, amount_units = "ml", volume
        else:
            named = [u for u in per_unit if u != "ml" and self.units.get(u) and re.search(self.units[u], t)]
            candidates = named or [u for u in per_unit if u != "ml"]
            if not candidates or (count is None and not how_often_stated(assumed)):
                why = "no number of units or frequency written" if candidates else "no content per unit known"
                return Reading(text, ingredients, None, why, "unknown")
            unit = max(candidates, key=lambda u: self._elemental(per_unit[u]) or 0.0)
            amount_units = count or 1.0
        mg = self._elemental(per_unit[unit])
        if mg is None:
            return Reading(text, ingredients, None, f"the content per {unit} has an unknown form", "unknown")
        label = per_unit[unit].get("label") or entry.get("label", "")
        read = f"{_fmt(amount_units)} × {unit} × {_fmt(mg)} mg Mg per {unit} ({label}) × {how_often}"
        note = assumed
        if entry.get("confidence") == "U":
            note = "; ".join(filter(None, [assumed, "content is an order of magnitude: check the label"]))
        return Reading(text, ingredients, round(amount_units * mg * frequency, 1), read, "content", note)

    def _elemental(self, unit: dict[str, Any]) -> float | None:
        if "elemental_mg" in unit:
            return float(unit["elemental_mg"])
        fraction = self.fractions.get(str(unit.get("form")))
        return None if fraction is None else float(unit["salt_mg"]) * fraction

    def _stated_amount(self, t: str, sources: list[ResolvedDrug], whole_entry: bool) -> tuple[float, str] | None:
        """The magnesium in one dose unit as written: (elemental mg, how it was read), or None."""
        elemental_marker = bool(self.elemental and self.elemental.search(t))
        best: tuple[float, str] | None = None
        for match in re.finditer(_MASS, t):
            if self._is_concentration(t, match):
                continue
            value, unit = _number(match.group(1)), match.group(2)
            before = _window(reversed(_tokens(t[: match.start()])))[::-1]
            after = _window(iter(_tokens(t[match.end() :])))
            form = self._form(" ".join(before + after))
            names_magnesium = any(self._is_magnesium(w) for w in before + after)
            if not (whole_entry or form or names_magnesium):
                continue  # in a combination, an amount is magnesium only when the text says so
            if form is None and whole_entry:
                form = self._form(t) or self._form(" ".join(d.ingredient for d in sources))
            written = f"{match.group(1)} {unit}"
            if unit == "mmol":
                mg, read = value * MG_PER_MMOL, f"{written} × {MG_PER_MMOL} mg/mmol (elemental)"
            elif elemental_marker or form is None:
                mg, read = value * _MASS_UNITS[unit], f"{written} elemental"
            else:
                fraction = self.fractions[form]
                mg = value * _MASS_UNITS[unit] * fraction
                read = f"{written} magnesium {form} (salt) × {fraction} elemental"
            if best is None or mg > best[0]:  # several amounts for one product: the largest (conservative)
                best = (mg, read)
        return best

    def _is_concentration(self, t: str, match: re.Match[str]) -> bool:
        return bool(re.match(rf"\s*(?:/|per)\s*(?:{_NUM})?\s*ml\b", t[match.end() :]))

    def _form(self, text: str) -> str | None:
        return next((m.key for m in self.forms.matches(text, fuzzy=False) if not m.negated), None)

    def _is_magnesium(self, word: str) -> bool:
        return word in self.magnesium_words or word.startswith("magnesium")

    def _count(self, t: str) -> tuple[float | None, str]:
        """Units per dose: '2 tabletten' or the 2 of '3dd2' (a schema such as '1-0-1' is read by frequency)."""
        dd = re.search(rf"\b\d+\s*dd\s*({_NUM})(?![\d.,]*\s*(?:mg|g|gram|ml|mmol|mcg)\b)", t)
        if dd:
            return _number(dd.group(1)), dd.group(0)
        for unit, words in self.units.items():
            if unit == "ml" or not words:
                continue
            found = re.search(rf"({_NUM})(?:\s*(?:-|tot|to)\s*({_NUM}))?\s*(?:{words})\b", t)
            if found:
                return max(_number(g) for g in found.groups() if g), found.group(0)
        return None, ""

    def _volume(self, t: str) -> float | None:
        """Millilitres per dose: '10 ml', '3dd10ml', '1 eetlepel' (spoons are ruleset data)."""
        ml_words = self.units.get("ml", "ml")
        for found in re.finditer(rf"({_NUM})(?:\s*(?:-|tot|to)\s*({_NUM}))?\s*(?:{ml_words})\b", t):
            if re.search(rf"(?:/|per)\s*(?:{_NUM})?\s*$", t[: found.start()]) or re.search(
                rf"{_MASS}\s*(?:/|per)\s*$", t[: found.start()]
            ):
                continue  # the 5 ml of "200 mg/5 ml" is a concentration, not a dose
            return max(_number(g) for g in found.groups() if g)
        for spoon, ml in self.spoons.items():
            spoons = re.search(rf"(?:({_NUM})\s*)?\b{re.escape(spoon)}\b", t)
            if spoons:
                return (_number(spoons.group(1)) if spoons.group(1) else 1.0) * ml
        return None

    def frequency(self, t: str) -> tuple[float | None, str, str]:
        """Doses per day, how they were read, and any assumption; None when the frequency cannot be known."""
        as_needed = bool(self.as_needed and self.as_needed.search(t))
        schema = re.search(
            r"(?<![\d.,/-])(\d(?:[.,]5)?)\s*-\s*(\d(?:[.,]5)?)\s*-\s*(\d(?:[.,]5)?)(?:\s*-\s*(\d(?:[.,]5)?))?(?![\d.,/-])",
            t,
        )
        if schema:
            units = sum(_number(g) for g in schema.groups() if g)
            return units, f"{schema.group(0)} ({_fmt(units)} units a day)", ""
        dd = re.search(r"\b(\d+)\s*dd(?![^\W\d_])", t)
        if dd:
            n = float(dd.group(1))
            return n, f"{_times(n)} ({dd.group(0).strip()})", ""
        if self.times and self.per_day:
            found = re.search(rf"\b({_NUM})\s*(?:{self.times})?\s*(?:{self.per_day})", t)
            if found:
                n = _number(found.group(1))
                return n, f"{_times(n)} ({found.group(0).strip()})", ""
        for words, n in self.daily_words:
            found = words.search(t) if words else None
            if found:
                return n, f"{_times(n)} ({found.group(0).strip()})", ""
        if self.per_week:
            found = re.search(rf"(?:\b({_NUM})\s*(?:{self.times})?\s*)?(?:{self.per_week})", t)
            if found:
                n = _number(found.group(1)) if found.group(1) else 1.0
                return n / 7, f"{_fmt(n)} times a week ({found.group(0).strip()})", ""
        if self.per_day and re.search(rf"(?:{self.per_day})", t):
            return 1.0, "once a day (per day)", ""
        if as_needed:
            return None, "taken as needed with no maximum a day written: the amount a day cannot be known", ""
        return 1.0, "once a day", ASSUMED_ONCE


ASSUMED_ONCE = "no frequency written: counted once a day"


def how_often_stated(assumed: str) -> bool:
    """Whether the frequency was written (not assumed)."""
    return assumed != ASSUMED_ONCE


def _tokens(text: str) -> list[str]:
    """Words, numbers (with their unit: the "mg" of "500 mg" is not the element) and separators of a folded text."""
    return [m.group(0) for m in re.finditer(rf"{_MASS}|[^\W\d_]+|{_NUM}|[+,;&]", text)]


def _window(tokens: Iterator[str]) -> list[str]:
    """Up to _WINDOW words next to an amount, up to a separator or a number (which start another ingredient)."""
    out: list[str] = []
    for token in tokens:
        if token in _SEPARATORS or token[0].isdigit() or len(out) == _WINDOW:
            break
        out.append(token)
    return out


def _times(n: float) -> str:
    return {1.0: "once a day", 2.0: "twice a day"}.get(n, f"{_fmt(n)} times a day")


def _alternation(words: list[str]) -> str:
    """A regex alternation of phrases (longest first), spaces flexible, or '' when there are none."""
    phrases = sorted({fold(w) for w in words}, key=len, reverse=True)
    return "|".join(r"\s*".join(re.escape(p) for p in phrase.split()) for phrase in phrases)


def _words_re(words: list[str]) -> re.Pattern[str] | None:
    alternation = _alternation(words)
    return re.compile(rf"(?<![\w]){'(?:' + alternation + ')'}(?![\w])") if alternation else None


_READERS: dict[tuple[str, int], AmountReader] = {}


def reader_for(ruleset: Ruleset, forms: PhraseIndex) -> AmountReader | None:
    """The amount reader of a ruleset that counts magnesium already taken (from PLAN_CONTRACT_SINCE_VERSION)."""
    if ruleset.version < PLAN_CONTRACT_SINCE_VERSION:
        return None
    key = (ruleset.sha256, id(forms))
    reader = _READERS.get(key)
    if reader is None:
        if len(_READERS) >= 16:
            _READERS.clear()
        reader = _READERS[key] = AmountReader(ruleset, forms)
    return reader


def other_magnesium(
    reader: AmountReader, entries: list[tuple[str | dict[str, Any], list[ResolvedDrug]]]
) -> OtherMagnesium:
    """Readings of every medication entry that names a magnesium product."""
    readings: list[Reading] = []
    if all(_SOURCE_CLASS_SET.isdisjoint(d.classes) for _, drugs in entries for d in drugs):  # carries_magnesium
        return NONE_TAKEN
    for entry, drugs in entries:
        reading = reader.read(entry, drugs)
        if reading is not None and reading not in readings:
            readings.append(reading)
    return OtherMagnesium(tuple(readings))


NONE_TAKEN = OtherMagnesium(())
