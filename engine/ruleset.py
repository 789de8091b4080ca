"""A ruleset version: its model, loading and content hash, and the manifest of published versions.

Loading checks the document (engine.ruleset_check) once, so evaluation never parses and never meets an
unknown name. The rules of the upper-limit table are generated here (engine.upper_limits).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import ruleset_check, upper_limits
from engine import vocabulary as vocab
from engine.errors import RulesetError

RULESETS_DIR = Path(__file__).resolve().parent.parent / "rulesets"
PUBLISHED_MANIFEST = RULESETS_DIR / "published.json"
_VERSION_FILE = re.compile(r"^v[0-9]+\.json$")


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
    description_nl: str = ""


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
        return vocab.drug_classes(self.drugs, self.atc_classes)


@dataclass(frozen=True)
class Ruleset:
    """A loaded, checked ruleset version."""

    name: str
    version: int
    status: str
    sha256: str
    rules: tuple[Rule, ...]
    sources: dict[str, str]  # tag -> the citation as one text (a structured source's `text`)
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

    @property
    def bilingual(self) -> bool:
        """Whether every message and plan text has its Dutch twin (versions from BILINGUAL_SINCE_VERSION)."""
        return self.version >= vocab.BILINGUAL_SINCE_VERSION

    @property
    def citations(self) -> dict[str, dict[str, Any]]:
        """Tag -> the full citation: title, publisher, year, url, kind, verified, text (an older version's
        plain-text source gives only its text)."""
        raw = self.raw.get("sources", {})
        return {tag: dict(entry) if isinstance(entry, dict) else {"text": entry} for tag, entry in raw.items()}

    def text(self, key: str, language: str = "en") -> str | None:
        """A plan text of the ruleset's `texts` in `language` (Dutch: `nl`), English when that is missing;
        None when the ruleset has no such text."""
        entry = self.raw.get("texts", {}).get(key)
        if not isinstance(entry, dict):
            return None
        return str(entry.get(language) or entry.get("en") or "") or None

    def finding_title(self, finding_id: str, language: str = "en") -> str:
        """A finding's catalogue title in `language` (Dutch: `title_nl`), English when that is missing, else
        the id itself (a ruleset without a title for it)."""
        entry = self.raw.get("findings", {}).get(finding_id, {})
        title = entry.get("title_nl") if language == "nl" else None
        return str(title or entry.get("title") or finding_id)


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
    errors = list(ruleset_check.check_data(data))
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
    errors = list(ruleset_check.check_data(data))
    errors.extend(_check_published_unchanged(path, data))
    return errors


def _check_published_unchanged(path: Path, data: dict[str, Any]) -> Iterator[RulesetError]:
    """A published version never changes: its hash must match the manifest of its rulesets folder (the
    published.json beside `<name>/vN.json`, as `rulesets export --to DIR` writes it), else the project's."""
    if data.get("status") != "published":
        return
    key = f"{path.parent.name}/{path.name}"
    manifest, recorded = _recorded_hash(path, key)
    actual = sha256_of(path)
    if recorded is None:
        yield RulesetError(f"published version is not recorded in {manifest}", path=key)
    elif recorded != actual:
        yield RulesetError(
            f"published version changed: sha256 {actual} but {recorded} was published; make a new version instead",
            path=key,
        )


def _recorded_hash(path: Path, key: str) -> tuple[Path, str | None]:
    """The first manifest (the file's own folder's, then the project's) that records `key`, and its hash."""
    own = path.resolve().parent.parent / PUBLISHED_MANIFEST.name
    manifests = [own] if own == PUBLISHED_MANIFEST.resolve() else [own, PUBLISHED_MANIFEST]
    for manifest in manifests:
        entries = json.loads(manifest.read_text("utf-8")) if manifest.exists() else {}
        if key in entries:
            return manifest, entries[key]
    return manifests[0] if manifests[0].exists() else PUBLISHED_MANIFEST, None


def _vocabulary(voc: dict[str, Any]) -> Vocabulary:
    """The vocabulary sections of a checked ruleset document."""
    return Vocabulary(
        drugs=voc.get("drugs", {}),
        products=voc.get("products", {}),
        concepts=voc.get("concepts", {}),
        forms=voc.get("forms", {}),
        atc_classes=voc.get("atc_classes", {}) if isinstance(voc.get("atc_classes", {}), dict) else {},
        routes=voc.get("routes", {}) if isinstance(voc.get("routes", {}), dict) else {},
        condition_history=voc.get("condition_history", {}) if isinstance(voc.get("condition_history"), dict) else {},
    )


def _build(data: dict[str, Any], sha256: str, origin: str) -> Ruleset:
    all_rules = list(data["rules"]) + upper_limits.expand(
        data.get("upper_limits", []), upper_limits.counts_other_mg(data), upper_limits.bilingual(data)
    )
    rules = tuple(
        Rule(
            id=raw["id"],
            when=tuple(_pattern(p) for p in raw["when"]),
            then=_filled_then(raw),
            sources=tuple(raw["sources"]),
            confidence=raw["confidence"],
            index=i,
            description=ruleset_check.fill_thresholds(raw.get("description", ""), raw["when"]),
            note=raw.get("note", ""),
            description_nl=ruleset_check.fill_thresholds(raw.get("description_nl", ""), raw["when"], ","),
        )
        for i, raw in enumerate(all_rules)
    )
    return Ruleset(
        name=data["ruleset"],
        version=data["version"],
        status=data["status"],
        sha256=sha256,
        rules=rules,
        sources=source_texts(data["sources"]),
        vocabulary=_vocabulary(data["vocabulary"]),
        settings=dict(data.get("settings", {})),
        path=origin,
        supersedes=data.get("supersedes"),
        change_note=data.get("change_note", ""),
        raw=data,
    )


def source_texts(sources: dict[str, Any]) -> dict[str, str]:
    """Tag -> the citation as one text: a plain-text source as written, a structured one by its `text`."""
    return {tag: str(entry["text"]) if isinstance(entry, dict) else str(entry) for tag, entry in sources.items()}


def _filled_then(raw: dict[str, Any]) -> dict[str, Any]:
    """The rule's effects, its messages' {threshold:FIELD} placeholders filled from its own conditions."""
    then = dict(raw["then"])
    for key, decimal in (("message", "."), ("message_nl", ",")):
        if isinstance(then.get(key), str):
            then[key] = ruleset_check.fill_thresholds(then[key], raw["when"], decimal)
    return then


def _pattern(raw: dict[str, Any]) -> Pattern:
    if "derived" in raw:
        return Pattern(on="derived", where=(Condition("name", "==", raw["derived"]),))
    return Pattern(
        on=raw["on"],
        where=tuple(Condition(*c) for c in raw.get("where", [])),
        where_any=tuple(Condition(*c) for c in raw.get("where_any", [])),
    )
