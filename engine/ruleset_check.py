"""Check a ruleset document: every problem, each naming the rule and the field, with the nearest valid name.

The names a ruleset may use are declared in engine.vocabulary; this module only tests a document against them.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine import upper_limits
from engine import vocabulary as vocab
from engine.errors import RulesetError

CONFIDENCE = ("V", "S", "U")
_RULE_ID = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TOP_KEYS = {
    "ruleset",
    "version",
    "status",
    "supersedes",
    "change_note",
    "settings",
    "sources",
    "upper_limits",
    "rules",
    "vocabulary",
    "findings",
    "texts",
}
_RULE_KEYS = {"id", "description", "description_nl", "when", "then", "sources", "confidence", "note"}
SOURCE_KINDS = ("primary", "secondary", "project")
_SOURCE_KEYS = {"title", "publisher", "year", "url", "kind", "verified", "text", "part_of", "locator", "date"}
_SOURCE_KEYS |= {"year_note", "note"}
# A rule's English text and its Dutch twin (from BILINGUAL_SINCE_VERSION on).
_DUTCH_TWINS = (("message", "message_nl"), ("description", "description_nl"))
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_DUTCH_LINES = (("monitoring", "monitoring_nl"), ("monitoring_on_magnesium", "monitoring_on_magnesium_nl"))
_PATTERN_KEYS = {"on", "where", "where_any", "derived"}


def _suggest(name: str, options: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


@dataclass(frozen=True)
class _RuleState:
    """What the rules of one document make and use, gathered while each rule is checked."""

    label: str
    sources: dict[str, Any]
    known: dict[tuple[str, str], Iterable[str]]  # (fact type, field) -> the values the ruleset's vocabulary names
    forms: dict[str, Any]  # the supplement forms a rule may suggest
    derived_made: set[str] = field(default_factory=set)
    derived_used: set[str] = field(default_factory=set)
    findings_made: set[str] = field(default_factory=set)


def check_data(data: Any) -> Iterator[RulesetError]:
    """Yield every problem in a ruleset document."""
    if not isinstance(data, dict):
        yield RulesetError("a ruleset is a JSON object")
        return
    label = f"{data.get('ruleset')} v{data.get('version')}"
    yield from _check_header(data, label)
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        sources = {}
    yield from check_citations(sources, label)
    yield from check_texts(data.get("texts"), data.get("version"), label)
    voc = data.get("vocabulary")
    if not isinstance(voc, dict):
        yield RulesetError("'vocabulary' is missing", ruleset=label)
        return
    yield from _check_vocabulary(voc, label, sources)
    yield from _check_codes_and_contexts(voc, label, sources)
    yield from _check_reading_sections(voc, label, sources)
    yield from _check_route_codes_and_chronic(voc, label)
    yield from _check_local_routes_and_history_words(voc, label, sources)
    if not isinstance(data.get("rules"), list) or not data["rules"]:
        yield RulesetError("'rules' must be a non-empty list", ruleset=label)
        return
    yield from upper_limits.check_table(data.get("upper_limits", []), label)
    yield from _check_amount_sections(voc, label, sources)
    yield from _check_rules(data, _RuleState(label, sources, _known_values(voc), voc.get("forms", {})))


def _check_header(data: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """Top-level keys, name, version, status, sources and settings."""
    for key in data:
        if key not in _TOP_KEYS:
            yield RulesetError(f"unknown key {key!r}", ruleset=label, suggestion=_suggest(key, _TOP_KEYS))
    name = data.get("ruleset")
    if not isinstance(name, str) or not name:
        yield RulesetError("'ruleset' must be a non-empty name", ruleset=label)
    if not isinstance(data.get("version"), int) or data["version"] < 1:
        yield RulesetError("'version' must be a whole number >= 1", ruleset=label)
    if data.get("status") not in ("draft", "published"):
        yield RulesetError("'status' must be 'draft' or 'published'", ruleset=label)
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        yield RulesetError("'sources' must map source tags to citations", ruleset=label)
    settings = data.get("settings", {})
    if settings.get("default_jurisdiction") not in upper_limits.JURISDICTIONS:
        yield RulesetError("settings.default_jurisdiction must be 'US' or 'EU'", ruleset=label)


def _known_values(voc: dict[str, Any]) -> dict[tuple[str, str], Iterable[str]]:
    """The values a condition may name that the ruleset's own vocabulary declares."""
    drugs = voc.get("drugs", {})
    atc = voc.get("atc_classes", {})
    return {
        ("medication", "ingredient"): drugs,
        ("medication", "classes"): vocab.drug_classes(drugs, atc if isinstance(atc, dict) else {}),
        ("medication", "product"): [*voc.get("products", {}), "none"],
        ("concept", "concept"): voc.get("concepts", {}),
        ("patient", "supplement_form"): [*voc.get("forms", {}), "unknown", "none"],
    }


def _check_rules(data: dict[str, Any], state: _RuleState) -> Iterator[RulesetError]:
    """The rules, with those generated from the upper-limit table: each rule, and what they make together."""
    label = state.label
    counts_other = upper_limits.counts_other_mg(data)
    dutch = upper_limits.bilingual(data)
    all_rules = list(data["rules"]) + upper_limits.expand(data.get("upper_limits", []), counts_other, dutch)
    ids = Counter(r.get("id") for r in all_rules if isinstance(r, dict))
    for rule_id, n in ids.items():
        if n > 1:
            yield RulesetError(f"rule id used {n} times", ruleset=label, rule_id=str(rule_id))
    for raw in all_rules:
        yield from _check_rule(raw, state)
        if counts_other:
            yield from _check_plan_contract(raw, label)
        if dutch:
            yield from check_dutch(raw, label)
    yield from _check_derived(state)
    version: int = data["version"] if isinstance(data.get("version"), int) else 0
    for finding in vocab.FINDING_IDS:
        if finding not in state.findings_made and version >= vocab.FINDING_SINCE_VERSION.get(finding, 0):
            yield RulesetError(f"catalogue finding {finding} has no rule that reports it", ruleset=label)
    yield from _check_match_bound(all_rules, label)
    yield from check_finding_titles(data.get("findings"), version, label)


def _check_derived(state: _RuleState) -> Iterator[RulesetError]:
    """Every derived fact is both derived by one rule and matched by another."""
    for orphan in sorted(state.derived_made - state.derived_used):
        yield RulesetError(
            f"derived fact {orphan!r} is never used by another rule (durable_rules would lose it)",
            ruleset=state.label,
        )
    for missing in sorted(state.derived_used - state.derived_made):
        yield RulesetError(
            f"derived fact {missing!r} is matched but no rule derives it (the rule can never fire)",
            ruleset=state.label,
            suggestion=_suggest(missing, state.derived_made),
        )


def check_citations(sources: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """Each source is a citation text, or a full citation {title, publisher, year, url, kind, verified, text}."""
    for tag, entry in sources.items():
        where = f"sources.{tag}"
        if isinstance(entry, str) and entry.strip():
            continue
        if not isinstance(entry, dict):
            yield RulesetError(f"{where} must be a citation text or an object with title and text", ruleset=label)
            continue
        for key in entry:
            if key not in _SOURCE_KEYS:
                yield RulesetError(
                    f"{where}: unknown key {key!r}", ruleset=label, suggestion=_suggest(key, _SOURCE_KEYS)
                )
        for problem in _citation_problems(entry):
            yield RulesetError(f"{where}.{problem}", ruleset=label)


def _citation_problems(entry: dict[str, Any]) -> Iterator[str]:
    """What is wrong with the fields of one full citation ('title must be a non-empty text')."""
    for key in ("title", "text"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            yield f"{key} must be a non-empty text"
    if entry.get("kind") not in SOURCE_KINDS:
        yield f"kind must be one of {', '.join(SOURCE_KINDS)}"
    if entry.get("verified") not in (*CONFIDENCE, None):
        yield "verified must be V, S, U or null"
    if entry.get("year") is not None and not isinstance(entry["year"], int):
        yield "year must be a whole number or null"
    for key in ("publisher", "url"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            yield f"{key} must be a text or null"


def _fields_of(text: str) -> list[tuple[str, str]]:
    """The {placeholders} of a text with their specs, sorted: what the Dutch twin must have too."""
    return sorted((name, spec or "") for _, name, spec, _ in string.Formatter().parse(text) if name is not None)


def _twin_problem(english: str, dutch: Any) -> str | None:
    """Why a Dutch twin does not match its English text, or None."""
    if not isinstance(dutch, str) or not dutch.strip():
        return "has no Dutch"
    try:
        ours, theirs = _fields_of(english), _fields_of(dutch)
    except ValueError as e:
        return f"has a broken placeholder ({e})"
    if ours != theirs:
        names = ", ".join("{" + (n + ":" + f if f else n) + "}" for n, f in theirs) or "none"
        return f"Dutch placeholders differ from the English ({names} in the Dutch)"
    numbers, dutch_numbers = _numbers_in(english), _numbers_in(dutch.replace(",", "."))
    if numbers != dutch_numbers:
        return f"Dutch numbers differ from the English ({', '.join(dutch_numbers) or 'none'} in the Dutch)"
    return None


def _numbers_in(text: str) -> list[str]:
    """The numbers a text states outside its placeholders (a Dutch decimal comma read as a point), sorted."""
    return sorted(re.findall(r"[0-9]+(?:\.[0-9]+)?", _PLACEHOLDER.sub("", text)))


def check_dutch(raw: Any, label: str) -> Iterator[RulesetError]:
    """A rule of a bilingual version: every message and description has its Dutch twin with the same
    {placeholders}; every monitoring line has one Dutch line."""
    if not isinstance(raw, dict) or not isinstance(raw.get("then"), dict):
        return
    rid = str(raw.get("id"))
    then = raw["then"]
    for english, dutch in _DUTCH_TWINS:
        holder = then if english == "message" else raw
        field = f"then.{dutch}" if english == "message" else dutch
        if isinstance(holder.get(english), str):
            problem = _twin_problem(holder[english], holder.get(dutch))
            if problem:
                yield RulesetError(f"{english} {problem}", ruleset=label, rule_id=rid, field=field)
        elif dutch in holder:
            yield RulesetError(f"{dutch} without {english}", ruleset=label, rule_id=rid, field=field)
    for english, dutch in _DUTCH_LINES:
        lines, dutch_lines = then.get(english), then.get(dutch)
        if lines is None and dutch_lines is None:
            continue
        if not isinstance(dutch_lines, list) or not isinstance(lines, list) or len(dutch_lines) != len(lines):
            yield RulesetError(
                f"{dutch} must have one Dutch line for each line of {english}",
                ruleset=label,
                rule_id=rid,
                field=f"then.{dutch}",
            )
            continue
        for i, (line, dutch_line) in enumerate(zip(lines, dutch_lines, strict=True)):
            problem = _twin_problem(str(line), dutch_line)
            if problem:
                yield RulesetError(f"{english}[{i}] {problem}", ruleset=label, rule_id=rid, field=f"then.{dutch}")


def check_texts(texts: Any, version: Any, label: str) -> Iterator[RulesetError]:
    """Top-level `texts`: {key: {"en", "nl"}}, the plan texts in both languages with the same placeholders."""
    if texts is None:
        return
    if not isinstance(texts, dict):
        yield RulesetError("'texts' must map keys to {en, nl}", ruleset=label)
        return
    for key, entry in texts.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("en"), str) or not entry["en"].strip():
            yield RulesetError(f"texts.{key} must be an object with 'en' and 'nl'", ruleset=label)
            continue
        problem = _twin_problem(entry["en"], entry.get("nl"))
        if problem:
            yield RulesetError(f"texts.{key} {problem}", ruleset=label)


FINDING_TITLE_MAX = 60  # a card summary starts with the title and stays under 140 characters
FINDING_TITLES_SINCE_VERSION = 2


def check_finding_titles(findings: Any, version: int, label: str) -> Iterator[RulesetError]:
    """Top-level `findings`: {ID: {"title", "title_nl"}}, a short human title for every catalogue id.

    Required from version 2; an older version may omit the section. Ids must be catalogue ids (REFERENCE §8).
    """
    if findings is None:
        if version >= FINDING_TITLES_SINCE_VERSION:
            yield RulesetError("'findings' (a title for every catalogue finding) is missing", ruleset=label)
        return
    if not isinstance(findings, dict):
        yield RulesetError("'findings' must map catalogue finding ids to titles", ruleset=label)
        return
    for fid, entry in findings.items():
        yield from _check_finding_title(fid, entry, label)
    for fid in vocab.FINDING_IDS:
        if fid not in findings and version >= vocab.FINDING_SINCE_VERSION.get(fid, 0):
            yield RulesetError(f"findings: catalogue finding {fid} has no title", ruleset=label)


def _check_finding_title(fid: Any, entry: Any, label: str) -> Iterator[RulesetError]:
    """One entry of `findings`: a catalogue id with a one-line title and title_nl."""
    if fid not in vocab.FINDING_IDS:
        yield RulesetError(
            f"findings: {fid!r} is not a catalogue finding id",
            ruleset=label,
            suggestion=_suggest(str(fid), vocab.FINDING_IDS),
        )
        return
    if not isinstance(entry, dict):
        yield RulesetError(f"findings.{fid} must be an object with title and title_nl", ruleset=label)
        return
    for key in entry:
        if key not in ("title", "title_nl"):
            yield RulesetError(
                f"findings.{fid}: unknown key {key!r}",
                ruleset=label,
                suggestion=_suggest(key, ("title", "title_nl")),
            )
    for key in ("title", "title_nl"):
        title = entry.get(key)
        if not isinstance(title, str) or not title.strip():
            yield RulesetError(f"findings.{fid}.{key} must be a non-empty text", ruleset=label)
        elif len(title) > FINDING_TITLE_MAX or title != title.strip() or "\n" in title:
            yield RulesetError(
                f"findings.{fid}.{key} must be one line of at most {FINDING_TITLE_MAX} characters ({len(title)} given)",
                ruleset=label,
            )


def _check_vocabulary(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """The drug, product, concept and form sections: names, sources, ingredients, fractions and kinds."""
    for section in ("drugs", "products", "concepts", "forms"):
        if not isinstance(voc.get(section), dict):
            yield RulesetError(f"vocabulary.{section} must be an object", ruleset=label)
            return
    yield from _check_drug_names(voc, label, sources)
    for key, product in voc["products"].items():
        for ingredient in product.get("ingredients", []):
            if ingredient not in voc["drugs"]:
                yield RulesetError(
                    f"vocabulary.products.{key}: unknown ingredient {ingredient!r}",
                    ruleset=label,
                    suggestion=_suggest(ingredient, voc["drugs"]),
                )
    for key, form in voc["forms"].items():
        fraction = form.get("elemental_fraction")
        if not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            yield RulesetError(f"vocabulary.forms.{key}: elemental_fraction must be in (0, 1]", ruleset=label)
    for key, concept in voc["concepts"].items():
        if concept.get("kind") not in ("condition", "symptom"):
            yield RulesetError(f"vocabulary.concepts.{key}: kind must be condition or symptom", ruleset=label)


def _check_drug_names(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """Drug and product names: lower case, each naming one entry; their source tags are known."""
    seen: dict[str, str] = {}
    for section in ("drugs", "products"):
        for key, entry in voc[section].items():
            for name in [key, *entry.get("names", [])]:
                if name != name.lower():
                    yield RulesetError(f"vocabulary.{section}.{key}: name {name!r} must be lower case", ruleset=label)
                owner = seen.setdefault(name, f"{section}.{key}")
                if owner != f"{section}.{key}":
                    yield RulesetError(
                        f"vocabulary.{section}.{key}: name {name!r} already names {owner}", ruleset=label
                    )
            for tag in entry.get("sources", []):
                if tag not in sources:
                    yield RulesetError(f"vocabulary.{section}.{key}: unknown source {tag!r}", ruleset=label)


_CODE = re.compile(r"^[0-9]{1,18}$")
_ATC_PREFIX = re.compile(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")
_CONCEPT_KEYS = frozenset({"kind", "names", "sources", "note", "snomed", "context_names", "implies", "patient_fact"})


def _check_codes_and_contexts(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """RxNorm and SNOMED CT codes (digits, each naming one entry), ATC class prefixes, concept context
    names, implied concepts and the patient facts a concept may set."""
    if not all(isinstance(voc.get(s), dict) for s in ("drugs", "products", "concepts")):
        return  # reported by _check_vocabulary
    yield from _check_rxnorm_codes(voc, label)
    yield from _check_atc_classes(voc, label)
    concepts = voc["concepts"]
    snomed_owner: dict[str, str] = {}
    for key, concept in concepts.items():
        yield from _check_concept(key, concept, concepts, snomed_owner, label, sources)


def _check_rxnorm_codes(voc: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """RxNorm codes of drugs and products: digits, each naming one entry."""
    owners: dict[str, str] = {}
    for section in ("drugs", "products"):
        for key, entry in voc[section].items():
            for code in entry.get("rxnorm", []):
                if not isinstance(code, str) or not _CODE.match(code):
                    yield RulesetError(
                        f"vocabulary.{section}.{key}: RxNorm code {code!r} must be digits", ruleset=label
                    )
                elif owners.setdefault(code, f"{section}.{key}") != f"{section}.{key}":
                    yield RulesetError(
                        f"vocabulary.{section}.{key}: RxNorm code {code} already names {owners[code]}", ruleset=label
                    )


def _check_atc_classes(voc: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """ATC class prefixes, each mapped to drug classes that some drug uses."""
    prefixes = voc.get("atc_classes", {})
    if not isinstance(prefixes, dict):
        yield RulesetError("vocabulary.atc_classes must map ATC class prefixes to drug classes", ruleset=label)
        prefixes = {}
    known_classes = {c for d in voc["drugs"].values() for c in d.get("classes", [])}
    for prefix, classes in prefixes.items():
        if not _ATC_PREFIX.match(prefix) or len(prefix) >= 7:
            yield RulesetError(f"vocabulary.atc_classes: {prefix!r} is not an ATC class prefix", ruleset=label)
        if not isinstance(classes, list) or not classes:
            yield RulesetError(f"vocabulary.atc_classes.{prefix}: give a non-empty list of classes", ruleset=label)
            continue
        for cls in classes:
            if cls not in known_classes:
                yield RulesetError(
                    f"vocabulary.atc_classes.{prefix}: class {cls!r} is not used by any drug",
                    ruleset=label,
                    suggestion=_suggest(str(cls), known_classes),
                )


_BOOLEAN_PATIENT_FACTS = frozenset(n for n, f in vocab.FACT_TYPES["patient"].items() if f.type == "boolean")


def _check_concept(
    key: str,
    concept: dict[str, Any],
    concepts: dict[str, Any],
    snomed_owner: dict[str, str],
    label: str,
    sources: dict[str, str],
) -> Iterator[RulesetError]:
    """One concept: sources, keys, SNOMED CT codes, context names, implied concepts and its patient fact."""
    where = f"vocabulary.concepts.{key}"
    for tag in concept.get("sources", []):
        if tag not in sources:
            yield RulesetError(f"{where}: unknown source {tag!r}", ruleset=label)
    for extra in sorted(set(concept) - _CONCEPT_KEYS):
        yield RulesetError(f"{where}: unknown key {extra!r}", ruleset=label, suggestion=_suggest(extra, _CONCEPT_KEYS))
    for code in concept.get("snomed", []):
        if not isinstance(code, str) or not _CODE.match(code):
            yield RulesetError(f"{where}: SNOMED CT code {code!r} must be digits", ruleset=label)
        elif snomed_owner.setdefault(code, key) != key:
            yield RulesetError(f"{where}: SNOMED CT code {code} already names {snomed_owner[code]}", ruleset=label)
    names = set(concept.get("names", []))
    for item in concept.get("context_names", []):
        yield from _check_context_name(item, names, where, label)
    for implied in concept.get("implies", []):
        if implied not in concepts or implied == key:
            yield RulesetError(
                f"{where}: implies unknown concept {implied!r}",
                ruleset=label,
                suggestion=_suggest(str(implied), concepts),
            )
    fact = concept.get("patient_fact")
    if fact is not None and fact not in _BOOLEAN_PATIENT_FACTS:
        yield RulesetError(
            f"{where}: patient_fact {fact!r} is not a boolean patient fact",
            ruleset=label,
            suggestion=_suggest(str(fact), _BOOLEAN_PATIENT_FACTS),
        )


def _check_context_name(item: Any, names: set[str], where: str, label: str) -> Iterator[RulesetError]:
    """One context name of a concept: {name, requires_any?, excludes_any?}, lower-case words, not also a name."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        yield RulesetError(f"{where}: a context name is {{name, requires_any?, excludes_any?}}", ruleset=label)
        return
    unknown = sorted(set(item) - {"name", "requires_any", "excludes_any"})
    if unknown:
        yield RulesetError(f"{where}: context name {item['name']!r}: unknown keys {unknown}", ruleset=label)
    if not (item.get("requires_any") or item.get("excludes_any")):
        yield RulesetError(
            f"{where}: context name {item['name']!r} needs requires_any or excludes_any (else it is a name)",
            ruleset=label,
        )
    if item["name"] in names:
        yield RulesetError(f"{where}: {item['name']!r} is both a name and a context name", ruleset=label)
    for word in [item["name"], *item.get("requires_any", []), *item.get("excludes_any", [])]:
        if not isinstance(word, str) or word != word.lower():
            yield RulesetError(f"{where}: context word {word!r} must be lower-case text", ruleset=label)


def _check_reading_sections(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """vocabulary.routes (route words and SNOMED CT route codes) and vocabulary.condition_history."""
    routes = voc.get("routes", {})
    if not isinstance(routes, dict):
        yield RulesetError("vocabulary.routes must be an object", ruleset=label)
        routes = {}
    seen: dict[str, str] = {}
    for key, entry in routes.items():
        yield from _check_route(key, entry, seen, label, sources)
    history = voc.get("condition_history", {})
    if not isinstance(history, dict):
        yield RulesetError("vocabulary.condition_history must be an object", ruleset=label)
        return
    concepts: dict[str, Any] = voc["concepts"] if isinstance(voc.get("concepts"), dict) else {}
    yield from _check_condition_history(history, concepts, label, sources)


def _check_route(
    key: str, entry: Any, seen: dict[str, str], label: str, sources: dict[str, str]
) -> Iterator[RulesetError]:
    """One route: oral or not, lower-case names and SNOMED CT codes each naming one route, cited sources."""
    where = f"vocabulary.routes.{key}"
    if not isinstance(entry, dict) or entry.get("route") not in ("oral", "not_oral"):
        yield RulesetError(f"{where}: route must be 'oral' or 'not_oral'", ruleset=label)
        return
    for name in [key, *entry.get("names", [])]:
        if not isinstance(name, str) or name != name.lower():
            yield RulesetError(f"{where}: name {name!r} must be lower-case text", ruleset=label)
        elif seen.setdefault(name, key) != key:
            yield RulesetError(f"{where}: name {name!r} already names routes.{seen[name]}", ruleset=label)
    for code in entry.get("snomed", []):
        if not (isinstance(code, str) and code.isdigit() and 6 <= len(code) <= 18):
            yield RulesetError(f"{where}: SNOMED CT code {code!r} must be 6-18 digits", ruleset=label)
        elif seen.setdefault(f"snomed:{code}", key) != key:
            yield RulesetError(f"{where}: code {code} already names routes.{seen['snomed:' + code]}", ruleset=label)
    if not entry.get("sources"):
        yield RulesetError(f"{where}: cite at least one source", ruleset=label)
    for tag in entry.get("sources", []):
        if tag not in sources:
            yield RulesetError(f"{where}: unknown source {tag!r}", ruleset=label)


def _check_condition_history(
    history: dict[str, Any], concepts: dict[str, Any], label: str, sources: dict[str, str]
) -> Iterator[RulesetError]:
    """Acute concepts, how long an acute condition stays current, history phrases and sources."""
    for concept in history.get("acute_concepts", []):
        if concept not in concepts:
            yield RulesetError(
                f"vocabulary.condition_history: unknown concept {concept!r}",
                ruleset=label,
                suggestion=_suggest(str(concept), concepts),
            )
    days = history.get("acute_current_days", 365)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        yield RulesetError("vocabulary.condition_history.acute_current_days must be a whole number >= 1", ruleset=label)
    for phrase in history.get("history_phrases", []):
        if not isinstance(phrase, str) or phrase != phrase.lower() or not phrase.strip():
            yield RulesetError(
                f"vocabulary.condition_history: phrase {phrase!r} must be lower-case text", ruleset=label
            )
    for tag in history.get("sources", []):
        if tag not in sources:
            yield RulesetError(f"vocabulary.condition_history: unknown source {tag!r}", ruleset=label)


def _check_route_codes_and_chronic(voc: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """routes.*.v3 (HL7 v3 RouteOfAdministration codes), routes.*.dose_form_snomed (SNOMED CT dose forms) and
    condition_history.chronic_snomed / chronic_phrases (never aged out): well-formed and each named once."""
    routes: dict[str, Any] = voc["routes"] if isinstance(voc.get("routes"), dict) else {}
    seen: dict[str, str] = {}
    for key, entry in routes.items():
        if not isinstance(entry, dict):
            continue
        for kind, pattern in (("v3", r"^[A-Z][A-Z0-9]{1,15}$"), ("dose_form_snomed", r"^[0-9]{6,18}$")):
            codes = entry.get(kind, [])
            if not isinstance(codes, list):
                yield RulesetError(f"vocabulary.routes.{key}.{kind} must be a list of codes", ruleset=label)
                continue
            for code in codes:
                if not isinstance(code, str) or not re.match(pattern, code):
                    yield RulesetError(f"vocabulary.routes.{key}.{kind}: code {code!r} is malformed", ruleset=label)
                elif seen.setdefault(f"{kind}:{code}", key) != key:
                    yield RulesetError(
                        f"vocabulary.routes.{key}.{kind}: {code} already names routes.{seen[kind + ':' + code]}",
                        ruleset=label,
                    )
    history: dict[str, Any] = voc["condition_history"] if isinstance(voc.get("condition_history"), dict) else {}
    for code in history.get("chronic_snomed", []):
        if not (isinstance(code, str) and code.isdigit() and 6 <= len(code) <= 18):
            yield RulesetError(
                f"vocabulary.condition_history.chronic_snomed: {code!r} must be 6-18 digits", ruleset=label
            )
    for phrase in history.get("chronic_phrases", []):
        if not isinstance(phrase, str) or phrase != phrase.lower() or not phrase.strip():
            yield RulesetError(
                f"vocabulary.condition_history.chronic_phrases: {phrase!r} must be lower-case text", ruleset=label
            )


_HISTORY_WORD_LISTS = (
    "past_phrases",
    "ended_phrases",
    "ongoing_phrases",
    "family_phrases",
    "negation_answers",
    "chronic_names",
)


def _check_local_routes_and_history_words(
    voc: dict[str, Any], label: str, sources: dict[str, str]
) -> Iterator[RulesetError]:
    """`local` on a route (true only for a route that is not oral), vocabulary.route_policy, and the text-reading
    word lists of vocabulary.condition_history (past and family wording, form-style negation answers)."""
    routes = voc.get("routes", {}) if isinstance(voc.get("routes", {}), dict) else {}
    for key, entry in routes.items():
        local = entry.get("local", False) if isinstance(entry, dict) else False
        if not isinstance(local, bool) or (local and entry.get("route") != "not_oral"):
            yield RulesetError(
                f"vocabulary.routes.{key}: local must be true or false, and oral is never local", ruleset=label
            )
    policy = voc.get("route_policy")
    if policy is not None:
        if not isinstance(policy, dict) or not policy.get("sources") or not policy.get("note"):
            yield RulesetError("vocabulary.route_policy needs sources and a note", ruleset=label)
        else:
            for tag in policy["sources"]:
                if tag not in sources:
                    yield RulesetError(f"vocabulary.route_policy: unknown source {tag!r}", ruleset=label)
    history = voc.get("condition_history", {})
    if isinstance(history, dict):
        concepts = voc.get("concepts", {}) if isinstance(voc.get("concepts"), dict) else {}
        yield from _check_history_words(history, concepts, label)


def _check_history_words(history: dict[str, Any], concepts: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """The word lists of vocabulary.condition_history, the concepts they name, and years_are_past."""
    for name in _HISTORY_WORD_LISTS:
        for word in history.get(name, []):
            if not isinstance(word, str) or not word.strip() or word != word.lower():
                yield RulesetError(
                    f"vocabulary.condition_history.{name}: {word!r} must be lower-case text", ruleset=label
                )
    for section in ("past_concepts", "ends_concepts"):
        for concept in history.get(section, []):
            if concept not in concepts:
                yield RulesetError(
                    f"vocabulary.condition_history.{section}: unknown concept {concept!r}",
                    ruleset=label,
                    suggestion=_suggest(str(concept), concepts),
                )
    if not isinstance(history.get("years_are_past", False), bool):
        yield RulesetError("vocabulary.condition_history.years_are_past must be true or false", ruleset=label)


def _check_plan_contract(raw: Any, label: str) -> Iterator[RulesetError]:
    """REFERENCE §8 plan contract: a physician who decides means cap 0, and cap 0 means a physician decides."""
    if not isinstance(raw, dict) or not isinstance(raw.get("then"), dict):
        return
    rid, then = str(raw.get("id")), raw["then"]

    def err(message: str, field: str) -> RulesetError:
        return RulesetError(message, ruleset=label, rule_id=rid, field=field)

    message = str(then.get("message", "")).lower()
    phrase = next((p for p in vocab.PHYSICIAN_DECIDES_PHRASES if p in message), None)
    if phrase and then.get("cap_mg") != 0:
        yield err(f"the message says '{phrase}' but the rule does not set cap_mg 0 (plan contract)", "then.cap_mg")
    if then.get("severity") == "contraindicated" and then.get("cap_mg") != 0:
        yield err("a contraindicated finding must set cap_mg 0: a physician decides (plan contract)", "then.cap_mg")
    if then.get("cap_mg") == 0 and not then.get("requires_physician"):
        yield err(
            "cap_mg 0 means a physician decides: set requires_physician (plan contract)", "then.requires_physician"
        )
    if "only_when_supplemented" in then and then["only_when_supplemented"] is not True:
        yield err("only_when_supplemented is true or absent", "then.only_when_supplemented")
    if then.get("only_when_supplemented") and ("cap_mg" in then or then.get("requires_physician")):
        yield err(
            "advice for taking magnesium cannot cap the dose or require a physician", "then.only_when_supplemented"
        )


_AMOUNT_TERM_LISTS = ("elemental", "magnesium_words", "as_needed", "per_day", "times", "per_week")


def _check_amount_sections(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """vocabulary.amount_terms (words for reading amounts) and vocabulary.magnesium_content (per-unit content)."""
    terms = voc.get("amount_terms", {})
    content = voc.get("magnesium_content", {})
    if not isinstance(terms, dict) or not isinstance(content, dict):
        yield RulesetError("vocabulary.amount_terms and magnesium_content must be objects", ruleset=label)
        return
    yield from _check_amount_terms(terms, label)
    units = set(terms.get("units", {}))
    forms = voc.get("forms", {})
    for key, entry in content.items():
        yield from _check_content(f"vocabulary.magnesium_content.{key}", entry, units, forms, label, sources)


def _check_amount_terms(terms: dict[str, Any], label: str) -> Iterator[RulesetError]:
    """Known keys, lists of words, numbers of times per day and spoon sizes in ml."""
    for key in terms:
        if key not in (*_AMOUNT_TERM_LISTS, "times_per_day", "units", "spoon_ml", "sources", "note"):
            yield RulesetError(f"vocabulary.amount_terms: unknown key {key!r}", ruleset=label)
    lists = [(f"amount_terms.{k}", terms.get(k, [])) for k in _AMOUNT_TERM_LISTS]
    lists += [(f"amount_terms.times_per_day.{k}", v) for k, v in terms.get("times_per_day", {}).items()]
    lists += [(f"amount_terms.units.{k}", v) for k, v in terms.get("units", {}).items()]
    for where, words in lists:
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            yield RulesetError(f"vocabulary.{where} must be a list of words", ruleset=label)
    for n in terms.get("times_per_day", {}):
        if not n.isdigit() or int(n) < 1:
            yield RulesetError(f"vocabulary.amount_terms.times_per_day: {n!r} is not a number of times", ruleset=label)
    for spoon, ml in terms.get("spoon_ml", {}).items():
        if isinstance(ml, bool) or not isinstance(ml, int | float) or ml <= 0:
            yield RulesetError(f"vocabulary.amount_terms.spoon_ml.{spoon} must be ml > 0", ruleset=label)


def _check_content(
    where: str, entry: Any, units: set[str], forms: dict[str, Any], label: str, sources: dict[str, str]
) -> Iterator[RulesetError]:
    """One product's magnesium content: cited, with a confidence, and an amount per known unit."""
    if not isinstance(entry, dict) or not isinstance(entry.get("per_unit"), dict):
        yield RulesetError(f"{where}: needs per_unit {{unit: {{salt_mg, form}} or {{elemental_mg}}}}", ruleset=label)
        return
    tags = entry.get("sources")
    if not isinstance(tags, list) or not tags or any(t not in sources for t in tags):
        yield RulesetError(f"{where}: every content cites known source tags", ruleset=label)
    if entry.get("confidence") not in CONFIDENCE or (entry.get("confidence") == "U" and not entry.get("note")):
        yield RulesetError(f"{where}: confidence V, S or U (U with a note saying why)", ruleset=label)
    for unit, amount in entry["per_unit"].items():
        if unit not in units:
            yield RulesetError(f"{where}: unknown unit {unit!r}", ruleset=label, suggestion=_suggest(unit, units))
        elif not isinstance(amount, dict):
            yield RulesetError(f"{where}.{unit}: expected {{salt_mg, form}} or {{elemental_mg}}", ruleset=label)
        elif "elemental_mg" in amount:
            if not _positive(amount["elemental_mg"]):
                yield RulesetError(f"{where}.{unit}: elemental_mg must be a number > 0", ruleset=label)
        elif not _positive(amount.get("salt_mg")) or amount.get("form") not in forms:
            yield RulesetError(
                f"{where}.{unit}: salt_mg > 0 and a known form are needed",
                ruleset=label,
                suggestion=_suggest(str(amount.get("form")), forms),
            )


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


_ErrorOf = Callable[..., RulesetError]  # (message, suggestion=None, field=None) -> error naming the rule


def _check_rule(raw: Any, state: _RuleState) -> Iterator[RulesetError]:
    """One rule: keys, sources, confidence, patterns and effects."""
    if not isinstance(raw, dict):
        yield RulesetError("every rule is an object", ruleset=state.label)
        return
    rid = raw.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        yield RulesetError(f"rule id {rid!r} must be UPPER_SNAKE_CASE", ruleset=state.label)
        return

    def err(message: str, suggestion: str | None = None, field: str | None = None) -> RulesetError:
        return RulesetError(message, ruleset=state.label, rule_id=rid, suggestion=suggestion, field=field)

    yield from _check_rule_citation(raw, err, state.sources)
    when = raw.get("when")
    if not isinstance(when, list) or not when:
        yield err("'when' must be a non-empty list of patterns", field="when")
        return
    for i, pattern in enumerate(when):
        for problem in _check_pattern(pattern, state):
            yield err(problem[0], problem[1], f"when[{i}]{problem[2]}")
    then = raw.get("then")
    if not isinstance(then, dict) or not then:
        yield err("'then' must be an object of effects", field="then")
        return
    yield from _check_effect_types(then, err)
    yield from _check_finding(then, _matched_fields(when), err, state)
    yield from _check_plan_effects(then, _matches_medication(when), err, state)
    yield from _check_wording(raw, err)


def _check_rule_citation(raw: dict[str, Any], err: _ErrorOf, sources: dict[str, Any]) -> Iterator[RulesetError]:
    """Known keys, at least one known source tag, and a confidence (a U rule says why in a note)."""
    for key in raw:
        if key not in _RULE_KEYS:
            yield err(f"unknown key {key!r}", _suggest(key, _RULE_KEYS), key)
    tags = raw.get("sources")
    if not isinstance(tags, list) or not tags:
        yield err("every rule must cite at least one source tag", field="sources")
    else:
        for tag in tags:
            if tag not in sources:
                yield err(f"unknown source tag {tag!r}", _suggest(str(tag), sources), "sources")
    confidence = raw.get("confidence")
    if confidence not in CONFIDENCE:
        yield err("confidence must be V, S or U", field="confidence")
    if confidence == "U" and not raw.get("note"):
        yield err("an unverified (U) rule must say so in a 'note'", field="note")


def _matched_fields(when: list[Any]) -> set[str]:
    """The fields of the facts a rule's patterns match (what its message may name)."""
    out: set[str] = set()
    for pattern in when:
        if isinstance(pattern, dict):
            on = "derived" if "derived" in pattern else pattern.get("on")
            out.update(vocab.FACT_TYPES.get(str(on), {}))
    return out


def _matches_medication(when: list[Any]) -> bool:
    """Whether a rule matches a medication (so an effect can name the drug)."""
    return any(isinstance(p, dict) and "derived" not in p and p.get("on") == "medication" for p in when)


def _type_problem(effect: vocab.Effect, value: Any) -> str | None:
    """What is wrong with an effect's value against its declared type and bounds (None: fine, or checked apart)."""
    if effect.type in ("number", "integer"):
        return None if _within(effect, value) else f"{effect.name} must be {_range_text(effect)}"
    if effect.type == "boolean" and not isinstance(value, bool):
        return f"{effect.name} must be true or false"
    if effect.type == "text_list" and not (isinstance(value, list) and all(isinstance(m, str) for m in value)):
        return f"{effect.name} must be a list of strings"
    return None


def _within(effect: vocab.Effect, value: Any) -> bool:
    """Whether a value is a number (a whole one for an integer effect) within the effect's bounds."""
    kinds = int if effect.type == "integer" else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    return (effect.minimum is None or value >= effect.minimum) and (effect.maximum is None or value <= effect.maximum)


def _range_text(effect: vocab.Effect) -> str:
    """'a number >= 0', 'a whole number from 1 to 8': the values a numeric effect takes."""
    kind = "a whole number" if effect.type == "integer" else "a number"
    low, high = effect.minimum, effect.maximum
    if low is not None and high is not None:
        return f"{kind} from {low:g} to {high:g}"
    if low is not None:
        return f"{kind} >= {low:g}"
    return f"{kind} <= {high:g}" if high is not None else kind


def _check_effect_types(then: dict[str, Any], err: _ErrorOf) -> Iterator[RulesetError]:
    """Every effect is declared in the vocabulary, and its value has the declared type."""
    for key, value in then.items():
        effect = vocab.EFFECTS.get(key) or (vocab.UPPER_LIMIT_EFFECT if key == vocab.UPPER_LIMIT_EFFECT.name else None)
        if effect is None:
            yield err(f"unknown effect {key!r}", _suggest(key, vocab.EFFECTS), f"then.{key}")
            continue
        problem = _type_problem(effect, value)
        if problem:
            yield err(problem, field=f"then.{key}")


def _check_finding(
    then: dict[str, Any], fact_fields: set[str], err: _ErrorOf, state: _RuleState
) -> Iterator[RulesetError]:
    """A catalogue finding with a severity and a message whose placeholders are fields of the matched facts."""
    finding = then.get("finding")
    if finding is None:
        if "severity" in then or "message" in then:
            yield err("'severity' and 'message' belong to a finding", field="then.finding")
        return
    if finding not in vocab.FINDING_IDS:
        yield err(f"unknown finding id {finding!r}", _suggest(str(finding), vocab.FINDING_IDS), "then.finding")
    state.findings_made.add(str(finding))
    if then.get("severity") not in vocab.SEVERITIES:
        yield err(f"severity must be one of {', '.join(vocab.SEVERITIES)}", field="then.severity")
    message = then.get("message")
    if not isinstance(message, str) or not message.strip():
        yield err("a finding needs a plain-language 'message'", field="then.message")
        return
    for placeholder in _placeholders(message):
        if placeholder not in fact_fields:
            yield err(
                f"message placeholder {{{placeholder}}} is not a field of the matched facts",
                _suggest(placeholder, fact_fields),
                "then.message",
            )


def _check_plan_effects(
    then: dict[str, Any], has_medication: bool, err: _ErrorOf, state: _RuleState
) -> Iterator[RulesetError]:
    """A derived fact's name, a separation window around a matched medication, and a known form to suggest."""
    if "derive" in then:
        if not isinstance(then["derive"], str):
            yield err("'derive' names one fact", field="then.derive")
        else:
            state.derived_made.add(then["derive"])
    if "separation" in then:
        yield from _check_separation(then["separation"], has_medication, err)
    if "suggest_form" in then and then["suggest_form"] not in state.forms:
        form = str(then["suggest_form"])
        yield err(f"unknown form {form!r}", _suggest(form, state.forms), "then.suggest_form")


def _check_separation(sep: Any, has_medication: bool, err: _ErrorOf) -> Iterator[RulesetError]:
    """{before_h, after_h}, each hours >= 0 or null, around a medication the rule matches."""
    if not has_medication:
        yield err("a separation needs a medication pattern to name the drug", field="then.separation")
    if not isinstance(sep, dict) or set(sep) != {"before_h", "after_h"}:
        yield err("separation must be {before_h, after_h}", field="then.separation")
        return
    for k, v in sep.items():
        if v is not None and (not isinstance(v, int | float) or v < 0):
            yield err(f"separation.{k} must be a number of hours >= 0 or null", field="then.separation")


def _placeholders(message: str) -> list[str]:
    """The {field} placeholders filled from the matched facts (a {threshold:...} one is filled at load)."""
    return [name for _, name, _, _ in string.Formatter().parse(message) if name and name != "threshold"]


def _check_pattern(pattern: Any, state: _RuleState) -> Iterator[tuple[str, str | None, str]]:
    """Problems of one pattern: (message, did-you-mean, where inside the pattern)."""
    if not isinstance(pattern, dict):
        yield "a pattern is an object", None, ""
        return
    for key in pattern:
        if key not in _PATTERN_KEYS:
            yield f"unknown pattern key {key!r}", _suggest(key, _PATTERN_KEYS), ""
    if "derived" in pattern:
        if not isinstance(pattern["derived"], str) or len(pattern) != 1:
            yield "a derived pattern is just {'derived': name}", None, ""
        else:
            state.derived_used.add(pattern["derived"])
        return
    on = pattern.get("on")
    if on not in vocab.FACT_TYPES or on == "derived":
        yield f"unknown fact type {on!r}", _suggest(str(on), [t for t in vocab.FACT_TYPES if t != "derived"]), ".on"
        return
    where, where_any = pattern.get("where", []), pattern.get("where_any", [])
    if not isinstance(where, list) or not isinstance(where_any, list):
        yield "'where' and 'where_any' are lists of [field, op, value]", None, ""
        return
    if where_any and len(where_any) < 2:
        yield "'where_any' needs at least two conditions (use 'where' for one)", None, ".where_any"
    problems = list(_check_conditions(where, where_any, on, state))
    yield from problems
    if not problems:
        for name, j, why in _contradictions(where):
            yield f"conditions on {name} contradict each other ({why}): the rule can never fire", None, f".where[{j}]"


def _check_conditions(
    where: list[Any], where_any: list[Any], on: str, state: _RuleState
) -> Iterator[tuple[str, str | None, str]]:
    """Problems of the conditions of one pattern on a fact of type `on`."""
    for section, triples in (("where", where), ("where_any", where_any)):
        for j, triple in enumerate(triples):
            for message, suggestion in _check_condition(triple, on, vocab.FACT_TYPES[on], state.known):
                yield message, suggestion, f".{section}[{j}]"


def _contradictions(where: list[list[Any]]) -> Iterator[tuple[str, int, str]]:
    """Fields whose `where` conditions (all of which must hold) no value can satisfy: (field, index, why)."""
    by_field: dict[str, list[tuple[int, str, Any]]] = {}
    for j, (name, op, value) in enumerate(where):
        by_field.setdefault(name, []).append((j, op, value))
    for name, tests in by_field.items():
        if len(tests) < 2:
            continue
        text = " and ".join(f"{op} {value!r}" for _, op, value in tests)
        last = tests[-1][0]
        equal = {repr(v) for _, op, v in tests if op == "=="}
        if len(equal) > 1 or any(op == "!=" and repr(v) in equal for _, op, v in tests):
            yield name, last, text
            continue
        numbers = [(op, v) for _, op, v in tests if isinstance(v, int | float) and not isinstance(v, bool)]
        # Bounds as (value, strict); on equal values the strict bound is the tighter one.
        lows = [(v, op == ">") for op, v in numbers if op in (">", ">=", "==")]
        highs = [(v, op == "<") for op, v in numbers if op in ("<", "<=", "==")]
        if lows and highs:
            low = max(lows, key=lambda b: (b[0], b[1]))
            high = min(highs, key=lambda b: (b[0], not b[1]))
            if low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1])):
                yield name, last, text


def _check_condition(
    triple: Any, on: str, fields: dict[str, vocab.FactField], known_values: dict[tuple[str, str], Iterable[str]]
) -> Iterator[tuple[str, str | None]]:
    """One [field, op, value] condition on a fact of type `on`."""
    if not isinstance(triple, list) or len(triple) != 3:
        yield f"condition {triple!r} must be [field, op, value]", None
        return
    name, op, value = triple
    if name not in fields:
        yield f"unknown fact {on}.{name}", _suggest(str(name), fields)
        return
    if op not in vocab.OPERATORS:
        yield f"unknown operator {op!r} on {name}", _suggest(str(op), vocab.OPERATORS)
        return
    spec = fields[name]
    if op in vocab.LIST_OPERATORS and spec.type != "string_list":
        yield f"operator {op!r} needs a list fact; {name} is a {spec.type}", None
        return
    if spec.type == "string_list" and op not in vocab.LIST_OPERATORS:
        yield f"{name} is a list: use 'contains' or 'contains_any'", None
        return
    values = value if op in ("in", "contains_any") else [value]
    if op in ("in", "contains_any") and (not isinstance(value, list) or not value):
        yield f"operator {op!r} needs a non-empty list", None
        return
    if op in ("in", "contains_any") and len(value) > vocab.MAX_VALUES_PER_CONDITION:
        yield (
            (
                f"{name}: {len(value)} values in one condition; durable_rules hangs at 512 sibling conditions, "
                f"so at most {vocab.MAX_VALUES_PER_CONDITION} are allowed: use a drug class instead"
            ),
            None,
        )
        return
    for v in values:
        yield from _check_value(name, op, v, spec, on, known_values)


def _check_value(
    name: str, op: str, v: Any, spec: vocab.FactField, on: str, known_values: dict[tuple[str, str], Iterable[str]]
) -> Iterator[tuple[str, str | None]]:
    """One value of a condition: its type matches the field's, and a text names a declared value."""
    if spec.type == "number":
        if isinstance(v, bool) or not isinstance(v, int | float):
            yield f"{name} is a number; {v!r} is not", None
        elif "e" in repr(v).lower():
            yield f"{name}: write {v!r} without an exponent (durable_rules rejects 1e-05)", None
        return
    if op in vocab.NUMERIC_OPERATORS:
        yield f"operator {op!r} needs a number fact; {name} is a {spec.type}", None
        return
    if spec.type == "boolean":
        if not isinstance(v, bool):
            yield f"{name} is true or false; {v!r} is not", None
        return
    if not isinstance(v, str):
        yield f"{name} takes text; {v!r} is not", None
        return
    known = list(known_values.get((on, name), spec.choices))
    if known and v not in known:
        yield f"{name}: unknown value {v!r}", _suggest(v, known)


def _check_match_bound(rules: list[Any], label: str) -> Iterator[RulesetError]:
    """Bound the rules that can match one fact at once below durable_rules' limit of 64.

    The bound is conservative: every pattern on a fact type counts, except that patterns on
    derived facts count per derived name (a derived fact has exactly one name).
    """
    counts: Counter[str] = Counter()
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("when"), list):
            continue
        for pattern in rule["when"]:
            if isinstance(pattern, dict):
                key = f"derived:{pattern['derived']}" if "derived" in pattern else str(pattern.get("on"))
                counts[key] += 1
    for key, n in sorted(counts.items()):
        if n > vocab.DURABLE_MAX_MATCHES_PER_FACT:
            yield RulesetError(
                f"{n} rule patterns can match one {key} fact; durable_rules allows "
                f"{vocab.DURABLE_MAX_MATCHES_PER_FACT}: split the fact type or merge rules",
                ruleset=label,
            )


# Stale wording: a number a rule's text states next to the unit of a field the rule tests (or of one of its
# effects) is a claim about the rule's own threshold, and must be one of the rule's values. A placeholder
# {threshold:FIELD} (or {threshold:FIELD:lower} / {threshold:FIELD:upper} when the rule bounds FIELD on both
# sides) is filled from the rule's condition when the ruleset loads, so a changed threshold changes the text.
THRESHOLD_PLACEHOLDER = re.compile(r"\{threshold:([A-Za-z0-9_]*)(?::([a-z]*))?\}")
_THRESHOLD_SIDES = {"lower": (">", ">=", "=="), "upper": ("<", "<=", "==")}
_NUMBER = r"(?<![\w.])(\d+(?:\.\d+)?)"
_UNIT_WORDS = {  # how a unit of vocabulary.FACT_TYPES is written in a rule's text
    "mmol/L": r"mmol/l",
    "years": r"years?(?![-\w])",
    "mg": r"mg(?![/\w])",
    "mg/dL": r"mg/dl",
    "kg": r"kg\b",
    "mL/min/1.73m2": r"ml/min(?:/1\.73\s*m(?:2|²))?",
    "h": r"h\b",  # the hours of a separation window
}
# eGFR is written without its unit: "eGFR below 30".
_EGFR_WORDS = re.compile(r"eGFR\s*(?:of|below|under|above|over|at least|<=?|>=?|≥|≤)?\s*" + _NUMBER)
_RANGE_BEFORE = re.compile(r"\d\s*[-–]\s*$|\d\s+to\s+$")  # "3-4 h", "1 to 3 years": a span, not a threshold
_CITED_ASIDE = re.compile(r"\([^()]*\[S\w*\][^()]*\)")  # "(a leaflet says 2 h / 4 h [S16b])": another source's
_FIELD_UNITS = {name: f.unit for fields in vocab.FACT_TYPES.values() for name, f in fields.items() if f.unit}


@dataclass(frozen=True)
class _Claim:
    """A number the text states with a unit: '0.75 mmol/L'."""

    value: float
    unit: str
    text: str


def _numeric_conditions(when: Any) -> list[tuple[str, str, float]]:
    """Every numeric [field, op, value] condition of a rule's patterns."""
    out: list[tuple[str, str, float]] = []
    for pattern in when if isinstance(when, list) else []:
        if not isinstance(pattern, dict):
            continue
        for triple in [*pattern.get("where", []), *pattern.get("where_any", [])]:
            if isinstance(triple, list) and len(triple) == 3 and _is_number(triple[2]):
                out.append((str(triple[0]), str(triple[1]), triple[2]))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: float) -> str:
    """A threshold as a person writes it: 0.7, 30."""
    return format(value, "g")


def threshold_of(when: Any, name: str, side: str | None) -> float | str:
    """The value a {threshold:FIELD[:side]} placeholder stands for, or why it names none (a text)."""
    tests = [(op, v) for f, op, v in _numeric_conditions(when) if f == name]
    if side is not None:
        if side not in _THRESHOLD_SIDES:
            return f"side {side!r} is not lower or upper"
        tests = [(op, v) for op, v in tests if op in _THRESHOLD_SIDES[side]]
    if not tests:
        return f"the rule does not test {name}" + (f" with a {side} bound" if side else "")
    if len({v for _, v in tests}) > 1:
        bounds = " and ".join(f"{op} {_show(v)}" for op, v in tests)
        return f"the rule tests {name} {bounds}: write {{threshold:{name}:lower}} or {{threshold:{name}:upper}}"
    return tests[0][1]


def fill_thresholds(text: str, when: Any, decimal: str = ".") -> str:
    """The text with each {threshold:FIELD[:side]} replaced by the rule's own value (a checked rule), written
    with `decimal` as the decimal sign (Dutch: ",")."""

    def value(match: re.Match[str]) -> str:
        found = threshold_of(when, match.group(1), match.group(2))
        return match.group(0) if isinstance(found, str) else _show(found).replace(".", decimal)

    return THRESHOLD_PLACEHOLDER.sub(value, text)


def _claims(text: str) -> Iterator[_Claim]:
    """The numbers a text states with a unit, leaving out spans ('3-4 h') and asides citing another source."""
    asides = [m.span() for m in _CITED_ASIDE.finditer(text)]
    for unit, words in _UNIT_WORDS.items():
        for m in re.finditer(_NUMBER + r"\s*(?:" + words + ")", text, re.IGNORECASE):
            if _RANGE_BEFORE.search(text[: m.start()]) or any(a <= m.start() < b for a, b in asides):
                continue
            yield _Claim(float(m.group(1)), unit, m.group(0))
    for m in _EGFR_WORDS.finditer(text):
        if not any(a <= m.start() < b for a, b in asides):
            yield _Claim(float(m.group(1)), "mL/min/1.73m2", m.group(0))


def _rule_values(raw: dict[str, Any]) -> dict[str, tuple[list[float], str]]:
    """Per unit, the values the rule itself uses and how to say them ('serum_mg_mmol_l < 0.7')."""
    by_unit: dict[str, list[tuple[str, str, float]]] = {}
    for name, op, v in _numeric_conditions(raw.get("when")):
        if name in _FIELD_UNITS:
            by_unit.setdefault(_FIELD_UNITS[name], []).append((name, op, v))
    out = {unit: ([v for *_, v in tests], _tests_text(tests)) for unit, tests in by_unit.items()}
    then: dict[str, Any] = raw["then"] if isinstance(raw.get("then"), dict) else {}
    sep = then.get("separation")
    if isinstance(sep, dict):
        hours = [v for v in sep.values() if _is_number(v)]
        out["h"] = (hours, "separates " + ", ".join(f"{k} {_show(v)}" for k, v in sep.items() if _is_number(v)))
    return out


def _tests_text(tests: list[tuple[str, str, float]]) -> str:
    """'tests serum_mg_mmol_l >= 0.5 and < 0.7'."""
    bounds: dict[str, list[str]] = {}
    for name, op, v in tests:
        bounds.setdefault(name, []).append(f"{op} {_show(v)}")
    return "tests " + " and ".join(f"{name} {' and '.join(b)}" for name, b in bounds.items())


def _check_wording(raw: dict[str, Any], err: _ErrorOf) -> Iterator[RulesetError]:
    """The rule's description and message: threshold placeholders name a tested field, stated numbers agree."""
    then: dict[str, Any] = raw["then"] if isinstance(raw.get("then"), dict) else {}
    values = _rule_values(raw)
    for where, text in (("description", raw.get("description")), ("then.message", then.get("message"))):
        if not isinstance(text, str):
            continue
        yield from _check_threshold_placeholders(text, raw.get("when"), where, err)
        for claim in _claims(text):
            if claim.unit in values and claim.value not in values[claim.unit][0]:
                yield err(f"says {claim.text} but the rule {values[claim.unit][1]}", field=where)


def _check_threshold_placeholders(text: str, when: Any, where: str, err: _ErrorOf) -> Iterator[RulesetError]:
    """Each {threshold:FIELD[:side]} names one numeric condition of the rule."""
    tested = sorted({name for name, _, _ in _numeric_conditions(when)})
    for m in THRESHOLD_PLACEHOLDER.finditer(text):
        found = threshold_of(when, m.group(1), m.group(2))
        if isinstance(found, str):
            suggestion = None if m.group(1) in tested else _suggest(m.group(1), tested)
            yield err(f"placeholder {m.group(0)}: {found}", suggestion, where)
