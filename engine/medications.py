"""Resolve medications as written (names, brands, misspellings, RxNorm/ATC codes) to ingredients.

RxNorm codes (ingredient, clinical and branded product codes) of drugs and of combination products
come from the ruleset; an ATC code not listed under a drug still gives the drug classes of its class
prefix (`atc_classes`, e.g. A02BC -> ppi). A drug without an interaction class is matched by its listed
names only (no spelling guess: a near-miss spelling may as well be another, unknown drug). A medicine
written with a local route (vocabulary.routes marked `local`: skin, eye, ear, nose) keeps its ingredient
but no class: it neither binds magnesium in the gut nor adds magnesium ("Ciprofloxacine oordruppels").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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
    method: str  # exact, spelling, rxnorm, atc, atc_class, or unrecognized
    score: float = 1.0
    local_route: str = ""  # the local route word written ("oordruppels"): no interaction class then

    def fact(self) -> dict[str, Any]:
        """The medication fact asserted into the rules engine; a locally applied medicine is asserted under
        "ingredient (route)" with no class, so no rule written for the ingredient taken by mouth matches it."""
        return {
            "t": "medication",
            "ingredient": f"{self.ingredient} ({self.local_route})" if self.local_route else self.ingredient,
            "classes": list(self.classes),
            "product": self.product,
            "text": self.text,
        }


_MG_WORD = re.compile(r"\bmg\b", re.IGNORECASE)


def _element_abbreviation(text: str) -> str:
    """ "Mg" not written after a number is the element, not the unit: "Mg 150mg elementair" -> "magnesium 150mg
    elementair", "calcium + Mg"; the "mg" of "20 mg" stays a unit."""

    def element(m: re.Match[str]) -> str:
        before = text[: m.start()].rstrip()
        return m.group(0) if before and before[-1].isdigit() else "magnesium"

    return _MG_WORD.sub(element, text) if _MG_WORD.search(text) else text


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
        exact_only = ["drug:" + key for key, drug in voc.drugs.items() if not drug.get("classes")]
        self._index = PhraseIndex(entries, exact_only=exact_only)
        self._rxnorm: dict[str, tuple[str, tuple[str, ...]]] = {}  # code -> (product or "none", ingredients)
        for key, drug in voc.drugs.items():
            for code in drug.get("rxnorm", []):
                self._rxnorm[str(code)] = ("none", (key,))
        for key, product in voc.products.items():
            for code in product.get("rxnorm", []):
                self._rxnorm[str(code)] = (key, tuple(product.get("ingredients", [])))
        self._atc = {code.upper(): key for key, d in voc.drugs.items() for code in d.get("atc", [])}
        self._atc_classes = {p.upper(): tuple(c) for p, c in voc.atc_classes.items()}
        self._cache: dict[str, tuple[ResolvedDrug, ...]] = {}
        routes = voc.routes
        self._routes = PhraseIndex(
            [(n, key) for key, r in routes.items() for n in [key, *r.get("names", [])] if isinstance(r, dict)],
            exact_only=list(routes),
        )
        self._local = {key for key, r in routes.items() if isinstance(r, dict) and r.get("local") is True}
        self._oral = {key for key, r in routes.items() if isinstance(r, dict) and r.get("route") == "oral"}

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
        found = self._resolve_drugs(entry)
        text = entry if isinstance(entry, str) else str(entry.get("name") or "")
        local = self.local_route(text) if text else ""
        if not local:
            return found
        return [d if d.method == "unrecognized" else replace(d, classes=(), local_route=local) for d in found]

    def local_route(self, text: str) -> str:
        """The local route word of a text ("oordruppels", "crème"), or "" (none, or an oral route is named too)."""
        matches = [m for m in self._routes.matches(text, fuzzy=False) if not m.negated]
        if not matches or any(m.key in self._oral for m in matches):
            return ""
        return next((m.phrase for m in matches if m.key in self._local), "")

    def _resolve_drugs(self, entry: str | dict[str, Any]) -> list[ResolvedDrug]:
        if isinstance(entry, str):
            return self._by_name(entry) or [self._unrecognized(entry)]
        text = str(entry.get("name") or entry.get("rxnorm") or entry.get("atc") or "")
        code = str(entry.get("rxnorm") or "")
        if code in self._rxnorm:
            product, ingredients = self._rxnorm[code]
            return [self._drug(ing, text, "rxnorm", product=product) for ing in ingredients]
        atc = str(entry.get("atc") or "").upper()
        if atc in self._atc:
            return [self._drug(self._atc[atc], text, "atc")]
        found = self._by_name(str(entry["name"])) if entry.get("name") else []
        classes = self._classes_of_atc(atc)
        if classes and not set(classes) <= {c for d in found for c in d.classes}:
            # the code's class is authoritative: keep it even when the name says something else
            found.append(ResolvedDrug(f"ATC {atc}", classes, "none", text, "atc_class", 1.0))
        return found or [self._unrecognized(text)]

    def _classes_of_atc(self, atc: str) -> tuple[str, ...]:
        """Drug classes of the longest listed ATC class prefix of a code (empty when none)."""
        for length in range(len(atc), 0, -1):
            classes = self._atc_classes.get(atc[:length])
            if classes:
                return classes
        return ()

    def _by_name(self, text: str) -> list[ResolvedDrug]:
        found: list[ResolvedDrug] = []
        for match in self._index.matches(_element_abbreviation(text) if "magnesium" in self._drugs else text):
            kind, key = match.key.split(":", 1)
            if kind == "product":
                found += [
                    self._drug(ing, text, match.method, match.score, product=key)
                    for ing in self._products[key].get("ingredients", [])
                ]
            else:
                found.append(self._drug(key, text, match.method, match.score))
        return found

    def _drug(self, key: str, text: str, method: str, score: float = 1.0, product: str = "none") -> ResolvedDrug:
        classes = tuple(self._drugs[key].get("classes", []))
        return ResolvedDrug(key, classes, product, text, method, score)

    @staticmethod
    def _unrecognized(text: str) -> ResolvedDrug:
        return ResolvedDrug(text, (vocab.UNRECOGNIZED_CLASS,), "none", text, "unrecognized", 0.0)
