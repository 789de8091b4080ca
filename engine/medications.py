"""Resolve medications as written (names, brands, misspellings, RxNorm/ATC codes) to ingredients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import vocabulary as vocab
from engine.lexicon import CACHE_LIMIT, PhraseIndex
from engine.ruleset import Vocabulary


@dataclass(frozen=True)
class ResolvedDrug:
    """One ingredient found in one medication entry, and how it was found."""

    ingredient: str
    classes: tuple[str, ...]
    product: str
    text: str
    method: str  # exact, spelling, rxnorm, atc, or unrecognized
    score: float = 1.0

    def fact(self) -> dict[str, Any]:
        """The medication fact asserted into the rules engine."""
        return {
            "t": "medication",
            "ingredient": self.ingredient,
            "classes": list(self.classes),
            "product": self.product,
            "text": self.text,
        }


class MedicationResolver:
    """Maps medication entries to ingredients and classes with the ruleset's drug vocabulary."""

    def __init__(self, voc: Vocabulary):
        self._drugs = voc.drugs
        self._products = voc.products
        entries: list[tuple[str, str]] = []
        for key, drug in voc.drugs.items():
            entries += [(name, "drug:" + key) for name in [key, *drug.get("names", [])]]
        for key, product in voc.products.items():
            entries += [(name, "product:" + key) for name in [key, *product.get("names", [])]]
        self._index = PhraseIndex(entries)
        self._rxnorm = {code: key for key, d in voc.drugs.items() for code in d.get("rxnorm", [])}
        self._atc = {code.upper(): key for key, d in voc.drugs.items() for code in d.get("atc", [])}
        self._cache: dict[str, tuple[ResolvedDrug, ...]] = {}

    def resolve(self, entry: str | dict[str, Any]) -> list[ResolvedDrug]:
        """Ingredients named by one medication entry; an unresolved entry yields one unrecognised drug."""
        if isinstance(entry, str):
            cached = self._cache.get(entry)
            if cached is None:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                cached = self._cache[entry] = tuple(self._resolve(entry))
            return list(cached)
        return self._resolve(entry)

    def _resolve(self, entry: str | dict[str, Any]) -> list[ResolvedDrug]:
        if isinstance(entry, dict):
            text = str(entry.get("name") or entry.get("rxnorm") or entry.get("atc") or "")
            code = str(entry.get("rxnorm") or "")
            if code in self._rxnorm:
                return [self._drug(self._rxnorm[code], text, "rxnorm")]
            atc = str(entry.get("atc") or "").upper()
            if atc in self._atc:
                return [self._drug(self._atc[atc], text, "atc")]
            if not entry.get("name"):
                return [self._unrecognized(text)]
            entry = str(entry["name"])
        found: list[ResolvedDrug] = []
        for match in self._index.find(entry):
            kind, key = match.key.split(":", 1)
            if kind == "product":
                found += [
                    self._drug(ing, entry, match.method, match.score, product=key)
                    for ing in self._products[key].get("ingredients", [])
                ]
            else:
                found.append(self._drug(key, entry, match.method, match.score))
        return found or [self._unrecognized(entry)]

    def _drug(self, key: str, text: str, method: str, score: float = 1.0, product: str = "none") -> ResolvedDrug:
        classes = tuple(self._drugs[key].get("classes", []))
        return ResolvedDrug(key, classes, product, text, method, score)

    @staticmethod
    def _unrecognized(text: str) -> ResolvedDrug:
        return ResolvedDrug(text, (vocab.UNRECOGNIZED_CLASS,), "none", text, "unrecognized", 0.0)
