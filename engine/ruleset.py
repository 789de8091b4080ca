"""Load and check a ruleset file; compute its content hash.

Everything is checked here, once, with errors that name the rule and the field and suggest
the nearest valid name. Evaluation never parses and never meets an unknown name.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import vocabulary as vocab
from engine.errors import RulesetError

RULESETS_DIR = Path(__file__).resolve().parent.parent / "rulesets"
PUBLISHED_MANIFEST = RULESETS_DIR / "published.json"
CONFIDENCE = ("V", "S", "U")
_RULE_ID = re.compile(r"^[A-Z][A-Z0-9_]*$")
_VERSION_FILE = re.compile(r"^v[0-9]+\.json$")
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
}
_RULE_KEYS = {"id", "description", "when", "then", "sources", "confidence", "note"}
_PATTERN_KEYS = {"on", "where", "where_any", "derived"}
_UL_KEYS = {
    "id",
    "jurisdiction",
    "age_min_years",
    "age_below_years",
    "ul_mg",
    "finding",
    "sources",
    "confidence",
    "note",
}


@dataclass(frozen=True)
class Condition:
    """One test `field op value` on a fact."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Pattern:
    """One fact a rule must match: all `where` conditions and at least one `where_any` condition."""

    on: str
    where: tuple[Condition, ...]
    where_any: tuple[Condition, ...] = ()

    def conditions(self) -> tuple[Condition, ...]:
        """Every condition of the pattern."""
        return self.where + self.where_any


@dataclass(frozen=True)
class Rule:
    """A checked rule: patterns that must all match, and the effects when they do."""

    id: str
    when: tuple[Pattern, ...]
    then: dict[str, Any]
    sources: tuple[str, ...]
    confidence: str
    index: int
    description: str = ""
    note: str = ""


@dataclass(frozen=True)
class Vocabulary:
    """Drug, product, concept and form vocabularies shipped in the ruleset."""

    drugs: dict[str, dict[str, Any]]
    products: dict[str, dict[str, Any]]
    concepts: dict[str, dict[str, Any]]
    forms: dict[str, dict[str, Any]]
    atc_classes: dict[str, list[str]] = field(default_factory=dict)  # ATC class prefix -> drug classes
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)  # route words; `local` routes do not chelate
    condition_history: dict[str, Any] = field(default_factory=dict)  # history, family and form-negation wording

    @property
    def classes(self) -> set[str]:
        """Every drug class the drug vocabulary uses, plus the unrecognised class."""
        out = {vocab.UNRECOGNIZED_CLASS}
        for drug in self.drugs.values():
            out.update(drug.get("classes", []))
        for classes in self.atc_classes.values():
            out.update(classes)
        return out


@dataclass(frozen=True)
class Ruleset:
    """A loaded, checked ruleset version."""

    name: str
    version: int
    status: str
    sha256: str
    rules: tuple[Rule, ...]
    sources: dict[str, str]
    vocabulary: Vocabulary
    settings: dict[str, Any]
    path: str
    supersedes: int | None = None
    change_note: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ref(self) -> dict[str, Any]:
        """The identity every result carries: id, version, sha256."""
        return {"id": self.name, "version": self.version, "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    """Content hash of a ruleset file (its exact bytes)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ruleset_files(directory: Path = RULESETS_DIR) -> list[Path]:
    """Every ruleset version file below `directory` (`<name>/v<N>.json`)."""
    files = [p for p in directory.glob("*/v*.json") if _VERSION_FILE.match(p.name)]
    return sorted(files, key=lambda p: (p.parent.name, _version_of(p)))


def _version_of(path: Path) -> int:
    digits = path.stem[1:]
    return int(digits) if digits.isdigit() else -1


def latest_published(name: str = "magnesium", directory: Path = RULESETS_DIR) -> Path:
    """Path of the newest published version of ruleset `name`."""
    candidates = [p for p in ruleset_files(directory) if p.parent.name == name]
    published = [p for p in candidates if json.loads(p.read_text("utf-8")).get("status") == "published"]
    if not published:
        raise RulesetError(f"no published version of ruleset {name!r} in {directory}")
    return published[-1]


def dump(data: dict[str, Any]) -> str:
    """The canonical text of a ruleset document (how every version file is written)."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def sha256_text(text: str) -> str:
    """Content hash of a ruleset's text (equal to the hash of the file that holds it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_text(text: str, origin: str = "<text>") -> dict[str, Any]:
    """The JSON object in a ruleset text, or a RulesetError naming line and column."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RulesetError(f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}", path=origin) from None
    if not isinstance(data, dict):
        raise RulesetError("a ruleset is a JSON object", path=origin)
    return data


def load_text(text: str, origin: str = "<text>") -> Ruleset:
    """Load and check a ruleset from its text (a draft, or a version stored in the database)."""
    data = parse_text(text, origin)
    errors = list(check_data(data))
    if errors:
        raise errors[0]
    return _build(data, sha256_text(text), origin)


def load(path: str | Path | None = None) -> Ruleset:
    """Load and check one ruleset file (default: the newest published magnesium version)."""
    file = Path(path) if path else latest_published()
    try:
        text = exact_text(file)
    except FileNotFoundError:
        raise RulesetError(f"no such ruleset file: {file}") from None
    return load_text(text, str(file))


def exact_text(path: Path) -> str:
    """A file's text exactly as stored (no newline translation), so its sha256 is the file's."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulesetError(f"not UTF-8 text (byte {e.start})", path=str(path)) from None


def check_file(path: Path) -> list[RulesetError]:
    """Every problem in one ruleset file (empty when it is valid)."""
    try:
        data = parse_text(exact_text(path), str(path))
    except RulesetError as e:
        return [e]
    errors = list(check_data(data))
    errors.extend(_check_published_unchanged(path, data))
    return errors


def _check_published_unchanged(path: Path, data: dict[str, Any]) -> Iterator[RulesetError]:
    """A published version never changes: its hash must match the manifest."""
    if data.get("status") != "published":
        return
    manifest = json.loads(PUBLISHED_MANIFEST.read_text("utf-8")) if PUBLISHED_MANIFEST.exists() else {}
    key = f"{path.parent.name}/{path.name}"
    recorded = manifest.get(key)
    actual = sha256_of(path)
    if recorded is None:
        yield RulesetError(f"published version is not recorded in {PUBLISHED_MANIFEST.name}", path=key)
    elif recorded != actual:
        yield RulesetError(
            f"published version changed: sha256 {actual} but {recorded} was published; make a new version instead",
            path=key,
        )


def _suggest(name: str, options: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


def check_data(data: Any) -> Iterator[RulesetError]:
    """Yield every problem in a ruleset document."""
    if not isinstance(data, dict):
        yield RulesetError("a ruleset is a JSON object")
        return
    name = data.get("ruleset")
    label = f"{name} v{data.get('version')}"
    for key in data:
        if key not in _TOP_KEYS:
            yield RulesetError(f"unknown key {key!r}", ruleset=label, suggestion=_suggest(key, _TOP_KEYS))
    if not isinstance(name, str) or not name:
        yield RulesetError("'ruleset' must be a non-empty name", ruleset=label)
    if not isinstance(data.get("version"), int) or data["version"] < 1:
        yield RulesetError("'version' must be a whole number >= 1", ruleset=label)
    if data.get("status") not in ("draft", "published"):
        yield RulesetError("'status' must be 'draft' or 'published'", ruleset=label)
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        yield RulesetError("'sources' must map source tags to citations", ruleset=label)
        sources = {}
    settings = data.get("settings", {})
    if settings.get("default_jurisdiction") not in ("US", "EU"):
        yield RulesetError("settings.default_jurisdiction must be 'US' or 'EU'", ruleset=label)
    voc = data.get("vocabulary")
    if not isinstance(voc, dict):
        yield RulesetError("'vocabulary' is missing", ruleset=label)
        return
    yield from _check_vocabulary(voc, label, sources)
    yield from _check_codes_and_contexts(voc, label, sources)
    yield from _check_reading_sections(voc, label, sources)
    yield from _check_route_codes_and_chronic(voc, label)
    yield from _check_local_routes_and_history_words(voc, label, sources)
    vocabulary = _vocabulary(voc)
    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        yield RulesetError("'rules' must be a non-empty list", ruleset=label)
        return
    yield from _check_upper_limits(data.get("upper_limits", []), label, sources)
    yield from _check_amount_sections(voc, label, sources)
    all_rules = list(rules_raw) + _upper_limit_rules(data.get("upper_limits", []), _counts_other_mg(data))
    ids = Counter(r.get("id") for r in all_rules if isinstance(r, dict))
    for rule_id, n in ids.items():
        if n > 1:
            yield RulesetError(f"rule id used {n} times", ruleset=label, rule_id=str(rule_id))
    derived_made: set[str] = set()
    derived_used: set[str] = set()
    findings_made: set[str] = set()
    for raw in all_rules:
        yield from _check_rule(raw, label, sources, vocabulary, derived_made, derived_used, findings_made)
        if _counts_other_mg(data):
            yield from _check_plan_contract(raw, label)
    for orphan in sorted(derived_made - derived_used):
        yield RulesetError(
            f"derived fact {orphan!r} is never used by another rule (durable_rules would lose it)",
            ruleset=label,
        )
    for missing in sorted(derived_used - derived_made):
        yield RulesetError(
            f"derived fact {missing!r} is matched but no rule derives it (the rule can never fire)",
            ruleset=label,
            suggestion=_suggest(missing, derived_made),
        )
    version: int = data["version"] if isinstance(data.get("version"), int) else 0
    for finding in vocab.FINDING_IDS:
        if finding not in findings_made and version >= vocab.FINDING_SINCE_VERSION.get(finding, 0):
            yield RulesetError(f"catalogue finding {finding} has no rule that reports it", ruleset=label)
    yield from _check_match_bound(all_rules, label)
    yield from check_finding_titles(data.get("findings"), version, label)


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
        if fid not in vocab.FINDING_IDS:
            yield RulesetError(
                f"findings: {fid!r} is not a catalogue finding id",
                ruleset=label,
                suggestion=_suggest(str(fid), vocab.FINDING_IDS),
            )
            continue
        if not isinstance(entry, dict):
            yield RulesetError(f"findings.{fid} must be an object with title and title_nl", ruleset=label)
            continue
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
                    f"findings.{fid}.{key} must be one line of at most {FINDING_TITLE_MAX} characters "
                    f"({len(title)} given)",
                    ruleset=label,
                )
    for fid in vocab.FINDING_IDS:
        if fid not in findings and version >= vocab.FINDING_SINCE_VERSION.get(fid, 0):
            yield RulesetError(f"findings: catalogue finding {fid} has no title", ruleset=label)


def _check_vocabulary(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    for section in ("drugs", "products", "concepts", "forms"):
        if not isinstance(voc.get(section), dict):
            yield RulesetError(f"vocabulary.{section} must be an object", ruleset=label)
            return
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


_CODE = re.compile(r"^[0-9]{1,18}$")
_ATC_PREFIX = re.compile(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")
_CONCEPT_KEYS = frozenset({"kind", "names", "sources", "note", "snomed", "context_names", "implies", "patient_fact"})


def _check_codes_and_contexts(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """RxNorm and SNOMED CT codes (digits, each naming one entry), ATC class prefixes, concept context
    names, implied concepts and the patient facts a concept may set."""
    if not all(isinstance(voc.get(s), dict) for s in ("drugs", "products", "concepts")):
        return  # reported by _check_vocabulary
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
    concepts = voc["concepts"]
    snomed_owner: dict[str, str] = {}
    booleans = {n for n, f in vocab.FACT_TYPES["patient"].items() if f.type == "boolean"}
    for key, concept in concepts.items():
        where = f"vocabulary.concepts.{key}"
        for tag in concept.get("sources", []):
            if tag not in sources:
                yield RulesetError(f"{where}: unknown source {tag!r}", ruleset=label)
        for extra in sorted(set(concept) - _CONCEPT_KEYS):
            yield RulesetError(
                f"{where}: unknown key {extra!r}", ruleset=label, suggestion=_suggest(extra, _CONCEPT_KEYS)
            )
        for code in concept.get("snomed", []):
            if not isinstance(code, str) or not _CODE.match(code):
                yield RulesetError(f"{where}: SNOMED CT code {code!r} must be digits", ruleset=label)
            elif snomed_owner.setdefault(code, key) != key:
                yield RulesetError(f"{where}: SNOMED CT code {code} already names {snomed_owner[code]}", ruleset=label)
        names = set(concept.get("names", []))
        for item in concept.get("context_names", []):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                yield RulesetError(f"{where}: a context name is {{name, requires_any?, excludes_any?}}", ruleset=label)
                continue
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
        for implied in concept.get("implies", []):
            if implied not in concepts or implied == key:
                yield RulesetError(
                    f"{where}: implies unknown concept {implied!r}",
                    ruleset=label,
                    suggestion=_suggest(str(implied), concepts),
                )
        fact = concept.get("patient_fact")
        if fact is not None and fact not in booleans:
            yield RulesetError(
                f"{where}: patient_fact {fact!r} is not a boolean patient fact",
                ruleset=label,
                suggestion=_suggest(str(fact), booleans),
            )


def _check_reading_sections(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """vocabulary.routes (route words and SNOMED CT route codes) and vocabulary.condition_history."""
    routes = voc.get("routes", {})
    if not isinstance(routes, dict):
        yield RulesetError("vocabulary.routes must be an object", ruleset=label)
        routes = {}
    seen: dict[str, str] = {}
    for key, entry in routes.items():
        where = f"vocabulary.routes.{key}"
        if not isinstance(entry, dict) or entry.get("route") not in ("oral", "not_oral"):
            yield RulesetError(f"{where}: route must be 'oral' or 'not_oral'", ruleset=label)
            continue
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
    history = voc.get("condition_history", {})
    if not isinstance(history, dict):
        yield RulesetError("vocabulary.condition_history must be an object", ruleset=label)
        return
    concepts: dict[str, Any] = voc["concepts"] if isinstance(voc.get("concepts"), dict) else {}
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
    if not isinstance(history, dict):
        return
    concepts = voc.get("concepts", {}) if isinstance(voc.get("concepts"), dict) else {}
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


def _vocabulary(voc: dict[str, Any]) -> Vocabulary:
    return Vocabulary(
        drugs=voc.get("drugs", {}),
        products=voc.get("products", {}),
        concepts=voc.get("concepts", {}),
        forms=voc.get("forms", {}),
        atc_classes=voc.get("atc_classes", {}) if isinstance(voc.get("atc_classes", {}), dict) else {},
        routes=voc.get("routes", {}) if isinstance(voc.get("routes", {}), dict) else {},
        condition_history=voc.get("condition_history", {}) if isinstance(voc.get("condition_history"), dict) else {},
    )


def _check_upper_limits(table: Any, label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    if not isinstance(table, list):
        yield RulesetError("'upper_limits' must be a list", ruleset=label)
        return
    bands: dict[str, list[tuple[float, float, str]]] = {}
    for row in table:
        row_id = row.get("id") if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row_id, str):
            yield RulesetError("every upper_limits row needs an 'id'", ruleset=label)
            continue
        for key in row:
            if key not in _UL_KEYS:
                yield RulesetError(
                    f"unknown key {key!r}", ruleset=label, rule_id=row_id, suggestion=_suggest(key, _UL_KEYS)
                )
        if row.get("jurisdiction") not in ("US", "EU"):
            yield RulesetError("jurisdiction must be 'US' or 'EU'", ruleset=label, rule_id=row_id, field="jurisdiction")
            continue
        low = row.get("age_min_years")
        high = row.get("age_below_years")
        if not isinstance(low, int | float) or (high is not None and not isinstance(high, int | float)):
            yield RulesetError(
                "age_min_years/age_below_years must be numbers", ruleset=label, rule_id=row_id, field="age_min_years"
            )
            continue
        upper = float("inf") if high is None else float(high)
        if upper <= low:
            yield RulesetError(
                "age band is empty (age_below_years <= age_min_years)",
                ruleset=label,
                rule_id=row_id,
                field="age_below_years",
            )
        for other_low, other_high, other_id in bands.get(row["jurisdiction"], []):
            if low < other_high and other_low < upper:
                yield RulesetError(
                    f"age band overlaps {other_id} in {row['jurisdiction']}",
                    ruleset=label,
                    rule_id=row_id,
                    field="age_min_years",
                )
        bands.setdefault(row["jurisdiction"], []).append((float(low), upper, row_id))
        if not isinstance(row.get("ul_mg"), int | float) or row["ul_mg"] <= 0:
            yield RulesetError("ul_mg must be a positive number", ruleset=label, rule_id=row_id, field="ul_mg")


def _upper_limit_rules(table: Any, counts_other: bool = False) -> list[dict[str, Any]]:
    """Each upper-limit row becomes two rules: the limit applies, and the dose exceeds it.

    From PLAN_CONTRACT_SINCE_VERSION on (`counts_other`), magnesium already taken counts too: two more
    rules per row, requested + other above the limit, and other alone above it (REFERENCE §1.5, §8).
    """
    if not isinstance(table, list):
        return []
    rules: list[dict[str, Any]] = []
    for row in table:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        band: list[list[Any]] = [
            ["jurisdiction", "==", row.get("jurisdiction")],
            ["age_years", ">=", row.get("age_min_years")],
        ]
        if row.get("age_below_years") is not None:
            band.append(["age_years", "<", row["age_below_years"]])
        common = {k: row[k] for k in ("sources", "confidence", "note") if k in row}
        ul = row.get("ul_mg")
        # an IV or other non-oral order is out of scope (ROUTE_NOT_ORAL): no oral upper limit is applied to it
        oral: list[list[Any]] = [["supplement_route", "!=", "not_oral"]] if counts_other else []
        rules.append(
            {
                "id": row["id"],
                "description": f"{row.get('jurisdiction')} upper limit {ul} mg/day applies to this age band",
                "when": [{"on": "patient", "where": band}],
                "then": {"ul_mg": ul},
                **common,
            }
        )
        rules.append(
            {
                "id": row["id"] + "_EXCEEDED",
                "description": f"requested supplemental Mg is above the {row.get('jurisdiction')} upper limit",
                "when": [{"on": "patient", "where": [*band, ["supplement_dose_elemental_mg", ">", ul], *oral]}],
                "then": {
                    "finding": row.get("finding"),
                    "severity": "moderate",
                    "message": (
                        "The requested {supplement_dose_elemental_mg} mg/day of elemental magnesium is above the "
                        f"{row.get('jurisdiction')} upper limit of {ul} mg/day for supplemental magnesium at "
                        "this age; the plan caps the dose at the limit"
                        + (" minus any magnesium already taken." if counts_other else ".")
                    ),
                    "cap_mg": ul,
                },
                **common,
            }
        )
        if counts_other:
            rules += _other_mg_limit_rules(row, band, common)
    return rules


def _counts_other_mg(data: dict[str, Any]) -> bool:
    """Whether a ruleset document counts magnesium already taken (and keeps the plan contract)."""
    version = data.get("version")
    return isinstance(version, int) and version >= vocab.PLAN_CONTRACT_SINCE_VERSION


def _other_mg_limit_rules(row: dict[str, Any], band: list[list[Any]], common: dict[str, Any]) -> list[dict[str, Any]]:
    """Requested + magnesium already taken above the limit; magnesium already taken alone above it."""
    ul, where = row.get("ul_mg"), row.get("jurisdiction")
    return [
        {
            "id": row["id"] + "_EXCEEDED_WITH_OTHER",
            "description": f"requested plus magnesium already taken is above the {where} upper limit",
            "when": [
                {
                    "on": "patient",
                    "where": [
                        *band,
                        ["supplement_dose_elemental_mg", "<=", ul],
                        ["total_supplemental_mg_per_day", ">", ul],
                    ],
                }
            ],
            "then": {
                "finding": row.get("finding"),
                "severity": "moderate",
                "message": (
                    "The requested {supplement_dose_elemental_mg} mg/day plus {other_mg_elemental_mg_per_day} mg/day "
                    "of magnesium already taken from other products makes {total_supplemental_mg_per_day} mg/day, "
                    f"above the {where} upper limit of {ul} mg/day for supplemental magnesium at this age; the plan "
                    "caps the supplement at the limit minus what is already taken."
                ),
                "cap_mg": ul,
            },
            **common,
        },
        {
            "id": row["id"] + "_EXCEEDED_BY_OTHER",
            "description": f"magnesium already taken is above the {where} upper limit on its own",
            "when": [{"on": "patient", "where": [*band, ["other_mg_elemental_mg_per_day", ">", ul]]}],
            "then": {
                "finding": row.get("finding"),
                "severity": "moderate",
                "message": (
                    "The magnesium already taken from other products ({other_mg_elemental_mg_per_day} mg/day) is "
                    f"above the {where} upper limit of {ul} mg/day on its own: the plan proposes no further "
                    "magnesium; review the other products."
                ),
                "cap_mg": ul,
            },
            **common,
        },
    ]


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
    lines = then.get("monitoring_on_magnesium")
    if lines is not None and not (isinstance(lines, list) and all(isinstance(m, str) for m in lines)):
        yield err("monitoring_on_magnesium must be a list of strings", "then.monitoring_on_magnesium")


_AMOUNT_TERM_LISTS = ("elemental", "magnesium_words", "as_needed", "per_day", "times", "per_week")


def _check_amount_sections(voc: dict[str, Any], label: str, sources: dict[str, str]) -> Iterator[RulesetError]:
    """vocabulary.amount_terms (words for reading amounts) and vocabulary.magnesium_content (per-unit content)."""
    terms = voc.get("amount_terms", {})
    content = voc.get("magnesium_content", {})
    if not isinstance(terms, dict) or not isinstance(content, dict):
        yield RulesetError("vocabulary.amount_terms and magnesium_content must be objects", ruleset=label)
        return
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
    units = set(terms.get("units", {}))
    forms = voc.get("forms", {})
    for key, entry in content.items():
        where = f"vocabulary.magnesium_content.{key}"
        if not isinstance(entry, dict) or not isinstance(entry.get("per_unit"), dict):
            yield RulesetError(
                f"{where}: needs per_unit {{unit: {{salt_mg, form}} or {{elemental_mg}}}}", ruleset=label
            )
            continue
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


def _check_rule(
    raw: Any,
    label: str,
    sources: dict[str, str],
    voc: Vocabulary,
    derived_made: set[str],
    derived_used: set[str],
    findings_made: set[str],
) -> Iterator[RulesetError]:
    if not isinstance(raw, dict):
        yield RulesetError("every rule is an object", ruleset=label)
        return
    rid = raw.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        yield RulesetError(f"rule id {rid!r} must be UPPER_SNAKE_CASE", ruleset=label)
        return

    def err(message: str, suggestion: str | None = None, field: str | None = None) -> RulesetError:
        return RulesetError(message, ruleset=label, rule_id=rid, suggestion=suggestion, field=field)

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
    when = raw.get("when")
    if not isinstance(when, list) or not when:
        yield err("'when' must be a non-empty list of patterns", field="when")
        return
    fact_fields: set[str] = set()
    has_medication = False
    for i, pattern in enumerate(when):
        for problem in _check_pattern(pattern, voc, derived_used):
            yield err(problem[0], problem[1], f"when[{i}]{problem[2]}")
        if isinstance(pattern, dict):
            on = "derived" if "derived" in pattern else pattern.get("on")
            fact_fields.update(vocab.FACT_TYPES.get(str(on), {}))
            has_medication = has_medication or on == "medication"
    then = raw.get("then")
    if not isinstance(then, dict) or not then:
        yield err("'then' must be an object of effects", field="then")
        return
    for key in then:
        if key not in vocab.EFFECTS and key != "ul_mg":
            yield err(f"unknown effect {key!r}", _suggest(key, vocab.EFFECTS), f"then.{key}")
    finding = then.get("finding")
    if finding is not None:
        if finding not in vocab.FINDING_IDS:
            yield err(f"unknown finding id {finding!r}", _suggest(str(finding), vocab.FINDING_IDS), "then.finding")
        findings_made.add(str(finding))
        if then.get("severity") not in vocab.SEVERITIES:
            yield err(f"severity must be one of {', '.join(vocab.SEVERITIES)}", field="then.severity")
        message = then.get("message")
        if not isinstance(message, str) or not message.strip():
            yield err("a finding needs a plain-language 'message'", field="then.message")
        else:
            for placeholder in _placeholders(message):
                if placeholder not in fact_fields:
                    yield err(
                        f"message placeholder {{{placeholder}}} is not a field of the matched facts",
                        _suggest(placeholder, fact_fields),
                        "then.message",
                    )
    elif "severity" in then or "message" in then:
        yield err("'severity' and 'message' belong to a finding", field="then.finding")
    if "derive" in then:
        if not isinstance(then["derive"], str):
            yield err("'derive' names one fact", field="then.derive")
        else:
            derived_made.add(then["derive"])
    if "separation" in then:
        sep = then["separation"]
        if not has_medication:
            yield err("a separation needs a medication pattern to name the drug", field="then.separation")
        if not isinstance(sep, dict) or set(sep) != {"before_h", "after_h"}:
            yield err("separation must be {before_h, after_h}", field="then.separation")
        else:
            for k, v in sep.items():
                if v is not None and (not isinstance(v, int | float) or v < 0):
                    yield err(f"separation.{k} must be a number of hours >= 0 or null", field="then.separation")
    for key in ("cap_mg", "ul_mg"):
        if key in then and (not isinstance(then[key], int | float) or then[key] < 0):
            yield err(f"{key} must be a number >= 0", field=f"then.{key}")
    if "monitoring" in then and not (
        isinstance(then["monitoring"], list) and all(isinstance(m, str) for m in then["monitoring"])
    ):
        yield err("monitoring must be a list of strings", field="then.monitoring")
    if "suggest_form" in then and then["suggest_form"] not in voc.forms:
        form = str(then["suggest_form"])
        yield err(f"unknown form {form!r}", _suggest(form, voc.forms), "then.suggest_form")


def _placeholders(message: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(message) if name]


def _check_pattern(pattern: Any, voc: Vocabulary, derived_used: set[str]) -> Iterator[tuple[str, str | None, str]]:
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
            derived_used.add(pattern["derived"])
        return
    on = pattern.get("on")
    if on not in vocab.FACT_TYPES or on == "derived":
        yield f"unknown fact type {on!r}", _suggest(str(on), [t for t in vocab.FACT_TYPES if t != "derived"]), ".on"
        return
    fields = vocab.FACT_TYPES[on]
    where, where_any = pattern.get("where", []), pattern.get("where_any", [])
    if not isinstance(where, list) or not isinstance(where_any, list):
        yield "'where' and 'where_any' are lists of [field, op, value]", None, ""
        return
    if where_any and len(where_any) < 2:
        yield "'where_any' needs at least two conditions (use 'where' for one)", None, ".where_any"
    problems = 0
    for section, triples in (("where", where), ("where_any", where_any)):
        for j, triple in enumerate(triples):
            for message, suggestion in _check_condition(triple, on, fields, voc):
                problems += 1
                yield message, suggestion, f".{section}[{j}]"
    if not problems:
        for name, j, why in _contradictions(where):
            yield f"conditions on {name} contradict each other ({why}): the rule can never fire", None, f".where[{j}]"


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
    triple: Any, on: str, fields: dict[str, vocab.FactField], voc: Vocabulary
) -> Iterator[tuple[str, str | None]]:
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
        yield from _check_value(name, op, v, spec, on, voc)


def _check_value(
    name: str, op: str, v: Any, spec: vocab.FactField, on: str, voc: Vocabulary
) -> Iterator[tuple[str, str | None]]:
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
    known: Iterable[str] = spec.choices
    if on == "medication" and name == "ingredient":
        known = voc.drugs
    elif on == "medication" and name == "classes":
        known = voc.classes
    elif on == "medication" and name == "product":
        known = [*voc.products, "none"]
    elif on == "concept" and name == "concept":
        known = voc.concepts
    elif on == "patient" and name == "supplement_form":
        known = [*voc.forms, "unknown", "none"]
    known = list(known)
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


def _build(data: dict[str, Any], sha256: str, origin: str) -> Ruleset:
    all_rules = list(data["rules"]) + _upper_limit_rules(data.get("upper_limits", []), _counts_other_mg(data))
    rules = tuple(
        Rule(
            id=raw["id"],
            when=tuple(_pattern(p) for p in raw["when"]),
            then=dict(raw["then"]),
            sources=tuple(raw["sources"]),
            confidence=raw["confidence"],
            index=i,
            description=raw.get("description", ""),
            note=raw.get("note", ""),
        )
        for i, raw in enumerate(all_rules)
    )
    return Ruleset(
        name=data["ruleset"],
        version=data["version"],
        status=data["status"],
        sha256=sha256,
        rules=rules,
        sources=dict(data["sources"]),
        vocabulary=_vocabulary(data["vocabulary"]),
        settings=dict(data.get("settings", {})),
        path=origin,
        supersedes=data.get("supersedes"),
        change_note=data.get("change_note", ""),
        raw=data,
    )


def _pattern(raw: dict[str, Any]) -> Pattern:
    if "derived" in raw:
        return Pattern(on="derived", where=(Condition("name", "==", raw["derived"]),))
    return Pattern(
        on=raw["on"],
        where=tuple(Condition(*c) for c in raw.get("where", [])),
        where_any=tuple(Condition(*c) for c in raw.get("where_any", [])),
    )
