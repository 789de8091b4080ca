"""Map conditions and symptoms (English and Dutch free text, or SNOMED CT codes) to concept ids.

Everything comes from the ruleset's concept vocabulary: names, ambiguous names that count only in
context (`context_names`), SNOMED CT codes (`snomed`), concepts another concept implies (`implies`:
a kidney transplant is a renal condition) and the patient fact a concept sets (`patient_fact`:
"zwanger" makes the patient pregnant for the rules).

The wording around a name is read with the word lists of `vocabulary.condition_history`: family history
("moeder heeft epilepsie", "familieanamnese: ...") is never the patient's condition; past wording
("status na", "s/p", "(1985)", "in 2001") makes an acute episode or an ended state (`past_concepts`) history,
while a chronic disease named in the past tense still counts ("history of epilepsy" is epilepsy,
`chronic_names`); ending wording ("gestopt", "ex-", "20 jaar droog") also ends the states of `ends_concepts`;
a form-style answer ("tremor: nee", "seizures: no") negates the entry. History and family concepts are
shown on the case, never asserted as facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.lexicon import CACHE_LIMIT, Context, PhraseIndex, fold
from engine.ruleset import Vocabulary


@dataclass(frozen=True)
class ResolvedConcept:
    """One concept found in one condition or symptom entry."""

    concept: str
    kind: str  # where it was listed: condition or symptom
    text: str
    method: str  # exact, spelling, context, snomed, or implied
    score: float

    def fact(self) -> dict[str, Any]:
        """The concept fact asserted into the rules engine."""
        return {"t": "concept", "concept": self.concept, "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class ConceptReading:
    """What one entry said: the concepts found, and those it negated."""

    text: str
    kind: str
    concepts: tuple[ResolvedConcept, ...]
    negated: tuple[str, ...]
    snomed: str | None = None
    past: tuple[str, ...] = ()  # concepts named as history ("status na appendicitis 1985"): shown, not asserted
    family: tuple[str, ...] = ()  # concepts named as family history ("moeder heeft epilepsie"): shown only
    context: str = ""  # the wording that made them history, family history or negated


def entry_text(entry: str | dict[str, Any]) -> str:
    """The text shown for an entry: its name, else its code."""
    if isinstance(entry, str):
        return entry
    name = entry.get("name")
    return str(name) if name else f"SNOMED CT {entry.get('snomed')}"


def _phrases_re(words: list[str]) -> re.Pattern[str] | None:
    """A regex for any of the phrases in folded text; word boundaries only where a phrase edge is a letter."""
    parts = []
    for word in sorted({fold(w) for w in words}, key=len, reverse=True):
        body = r"\s*".join(re.escape(p) for p in word.split())
        start = r"(?<!\w)" if word[:1].isalnum() else ""
        end = r"(?!\w)" if word[-1:].isalnum() else ""
        parts.append(start + body + end)
    return re.compile("|".join(parts)) if parts else None


# a year said to be when it happened: "in 2001", "(1985)", "van 1999"; a bare year may be this year's, so it is
# not read as past (in doubt an acute episode stays current)
_YEAR = re.compile(r"(?:(?<!\w)(?:in|van|from|uit|anno)\s+|\(\s*)(?:19|20)\d{2}(?!\d)")


@dataclass(frozen=True)
class _Wording:
    """What the words around a name say: family history, past, ended, or a form-style 'no'."""

    kind: str  # family, negated, ended, past, or "" (current)
    phrase: str = ""


class _ContextReader:
    """The word lists of vocabulary.condition_history, compiled."""

    def __init__(self, policy: dict[str, Any]):
        self.family = _phrases_re(list(policy.get("family_phrases", [])))
        self.past = _phrases_re([*policy.get("history_phrases", []), *policy.get("past_phrases", [])])
        self.ended = _phrases_re(list(policy.get("ended_phrases", [])))
        self.ongoing = _phrases_re(list(policy.get("ongoing_phrases", [])))
        answers = sorted({fold(a) for a in policy.get("negation_answers", [])}, key=len, reverse=True)
        self.answer = (
            re.compile(r"(?:[:=]|\s[-–]|^[-–])\s*(?:" + "|".join(re.escape(a) for a in answers) + r")\s*[.!]?\s*$")
            if answers
            else None
        )
        self.past_concepts = frozenset(policy.get("past_concepts", []))
        self.ends_concepts = frozenset(policy.get("ends_concepts", []))
        self.chronic_names = frozenset(fold(n) for n in policy.get("chronic_names", []))
        self.years_are_past = bool(policy.get("years_are_past", False))

    def wording(self, text: str) -> _Wording:
        """The strongest wording of one entry: family > a form-style 'no' > ended > past > current."""
        t = fold(text)
        for kind, pattern in (("family", self.family), ("negated", self.answer), ("ended", self.ended)):
            found = pattern.search(t) if pattern else None
            if found:
                return _Wording(kind, found.group(0).strip(" :=-–"))
        found = self.past.search(t) if self.past else None
        if found:
            return _Wording("past", found.group(0).strip())
        year = _YEAR.search(t) if self.years_are_past else None
        if year and not (self.ongoing and self.ongoing.search(t)):
            return _Wording("past", year.group(0).strip("( "))
        return _Wording("")

    def is_past(self, wording: _Wording, concept: str, phrase: str) -> bool:
        """Whether this wording makes this concept (named by `phrase`) history rather than current."""
        if fold(phrase) in self.chronic_names:
            return False  # "history of epilepsy" is still epilepsy
        if wording.kind == "ended":
            return concept in self.past_concepts or concept in self.ends_concepts
        return wording.kind == "past" and concept in self.past_concepts


class ConceptResolver:
    """Finds concepts by SNOMED CT code, or by name (spelling tolerance, context, simple negation) in text."""

    def __init__(self, voc: Vocabulary):
        concepts = voc.concepts
        entries = [(n, key) for key, c in concepts.items() for n in [key.replace("_", " "), *c.get("names", [])]]
        contexts = [
            (
                item["name"],
                key,
                Context(frozenset(item.get("requires_any", [])), frozenset(item.get("excludes_any", []))),
            )
            for key, c in concepts.items()
            for item in c.get("context_names", [])
        ]
        self._index = PhraseIndex(entries, contexts=contexts)
        self._snomed = {str(code): key for key, c in concepts.items() for code in c.get("snomed", [])}
        self._implies = {key: tuple(c.get("implies", [])) for key, c in concepts.items() if c.get("implies")}
        self._wording = _ContextReader(voc.condition_history)
        self._cache: dict[tuple[str, str, str], ConceptReading] = {}

    def read(self, entry: str | dict[str, Any], kind: str) -> ConceptReading:
        """Concepts named in one entry (text, or {name?, snomed?}); a known SNOMED CT code wins over the text.

        "no seizures" / "geen diarree" are kept as negated, not matched."""
        if isinstance(entry, str):
            text, code = entry, ""
        else:
            text, code = entry_text(entry), str(entry.get("snomed") or "")
        key = (text, code, kind)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            cached = self._cache[key] = self._read(text, code, kind, bool(isinstance(entry, str) or entry.get("name")))
        return cached

    def _read(self, text: str, code: str, kind: str, has_name: bool) -> ConceptReading:
        if code and code in self._snomed:
            found = [ResolvedConcept(self._snomed[code], kind, text, "snomed", 1.0)]
            phrases = {self._snomed[code]: text}
            negated: tuple[str, ...] = ()
        elif has_name:
            matches = self._index.matches(text)
            found = [ResolvedConcept(m.key, kind, text, m.method, m.score) for m in matches if not m.negated]
            phrases = {m.key: m.phrase for m in matches}
            negated = tuple(m.key for m in matches if m.negated)
        else:
            found, phrases, negated = [], {}, ()
        wording = self._wording.wording(text) if has_name and found else _Wording("")
        past: list[str] = []
        family: list[str] = []
        if wording.kind == "family":
            family, found = [c.concept for c in found], []
        elif wording.kind == "negated":
            negated, found = negated + tuple(c.concept for c in found), []
        elif wording.kind:
            past = [c.concept for c in found if self._wording.is_past(wording, c.concept, phrases[c.concept])]
            found = [c for c in found if c.concept not in past]
        seen = {c.concept for c in found}
        for concept in list(found):
            for implied in self._implies.get(concept.concept, ()):
                if implied not in seen:
                    seen.add(implied)
                    found.append(ResolvedConcept(implied, kind, text, "implied", concept.score))
        shown = wording.phrase if (past or family or wording.kind == "negated") else ""
        return ConceptReading(text, kind, tuple(found), negated, code or None, tuple(past), tuple(family), shown)
