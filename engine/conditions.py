"""Map free-text conditions and symptoms (English and Dutch) to concept ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.lexicon import CACHE_LIMIT, PhraseIndex
from engine.ruleset import Vocabulary


@dataclass(frozen=True)
class ResolvedConcept:
    """One concept found in one condition or symptom entry."""

    concept: str
    kind: str  # where it was listed: condition or symptom
    text: str
    method: str
    score: float

    def fact(self) -> dict[str, Any]:
        """The concept fact asserted into the rules engine."""
        return {"t": "concept", "concept": self.concept, "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class ConceptReading:
    """What one free-text entry said: the concepts found, and those it negated."""

    text: str
    kind: str
    concepts: tuple[ResolvedConcept, ...]
    negated: tuple[str, ...]


class ConceptResolver:
    """Finds concept names (with spelling tolerance and simple negation) in free text."""

    def __init__(self, voc: Vocabulary):
        entries = [(n, key) for key, c in voc.concepts.items() for n in [key.replace("_", " "), *c.get("names", [])]]
        self._index = PhraseIndex(entries)
        self._cache: dict[tuple[str, str], ConceptReading] = {}

    def read(self, text: str, kind: str) -> ConceptReading:
        """Concepts named in one entry; "no seizures" / "geen diarree" are kept as negated, not matched."""
        cached = self._cache.get((text, kind))
        if cached is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            cached = self._cache[(text, kind)] = self._read(text, kind)
        return cached

    def _read(self, text: str, kind: str) -> ConceptReading:
        matches = self._index.find(text)
        concepts = tuple(ResolvedConcept(m.key, kind, text, m.method, m.score) for m in matches if not m.negated)
        negated = tuple(m.key for m in matches if m.negated)
        return ConceptReading(text, kind, concepts, negated)
