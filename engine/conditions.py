"""Map conditions and symptoms (English and Dutch free text, or SNOMED CT codes) to concept ids.

Everything comes from the ruleset's concept vocabulary: names, ambiguous names that count only in
context (`context_names`), SNOMED CT codes (`snomed`), concepts another concept implies (`implies`:
a kidney transplant is a renal condition) and the patient fact a concept sets (`patient_fact`:
"zwanger" makes the patient pregnant for the rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.lexicon import CACHE_LIMIT, Context, PhraseIndex
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


def entry_text(entry: str | dict[str, Any]) -> str:
    """The text shown for an entry: its name, else its code."""
    if isinstance(entry, str):
        return entry
    name = entry.get("name")
    return str(name) if name else f"SNOMED CT {entry.get('snomed')}"


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
            negated: tuple[str, ...] = ()
        elif has_name:
            matches = self._index.find(text)
            found = [ResolvedConcept(m.key, kind, text, m.method, m.score) for m in matches if not m.negated]
            negated = tuple(m.key for m in matches if m.negated)
        else:
            found, negated = [], ()
        seen = {c.concept for c in found}
        for concept in list(found):
            for implied in self._implies.get(concept.concept, ()):
                if implied not in seen:
                    seen.add(implied)
                    found.append(ResolvedConcept(implied, kind, text, "implied", concept.score))
        return ConceptReading(text, kind, tuple(found), negated, code or None)
