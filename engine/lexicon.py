"""Find vocabulary phrases in free text: exact multi-word matches first, then close spellings.

Shared by medication and condition/symptom resolution. Matching works on lower-case word
tokens, takes the longest phrase first (so "esomeprazole magnesium" wins over "magnesium"),
and falls back to a spelling-similarity match for single words of five letters or more that keep their
first three letters ("neuropathie" is never "nefropathie"). Ambiguous
phrases count only in context ("insult" beside "epileptisch", "toeval" beside "epilepsie"), and
are never matched by spelling; entries may be marked exact-only (no spelling match at all).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)
FUZZY_CUTOFF = 0.85  # similarity ratio for a misspelling to count as a match
FUZZY_MIN_LENGTH = 5  # shorter words are too easily confused (e.g. "iron" / "irin")
# A misspelling keeps its first letters: "neuropathie" is never "nefropathie" (another organ, another concept);
# prefer no guess to a guess that crosses to a different clinical concept
SPELLING_PREFIX = 3
CACHE_LIMIT = 50_000  # texts remembered per index; cleared when full so memory stays flat over millions
NEGATIONS = frozenset({"no", "not", "denies", "without", "geen", "niet", "zonder", "nooit", "never"})


def fold(text: str) -> str:
    """Lower-case and strip accents, so "nierinsufficiëntie" and "nierinsufficientie" agree."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """Word tokens of a text, folded; digits and punctuation split words and are dropped."""
    return _TOKEN.findall(fold(text))


@dataclass(frozen=True)
class Match:
    """One vocabulary entry found in a text."""

    key: str
    phrase: str
    method: str  # "exact" or "spelling"
    score: float
    negated: bool = False


@dataclass(frozen=True)
class Context:
    """When an ambiguous phrase counts: another word of the same text is in `requires` (when given) and none
    is in `excludes` ("insult" counts beside "epileptisch", never alone or beside "renal")."""

    requires: frozenset[str] = frozenset()
    excludes: frozenset[str] = frozenset()

    def allows(self, others: set[str]) -> bool:
        """True when the other words of the text satisfy this context."""
        if self.requires and not self.requires & others:
            return False
        return not self.excludes & others


class PhraseIndex:
    """Index of vocabulary phrases (one or more words) pointing at entry keys."""

    def __init__(
        self,
        entries: Iterable[tuple[str, str]],
        *,
        contexts: Iterable[tuple[str, str, Context]] = (),
        exact_only: Iterable[str] = (),
    ):
        """`contexts`: (phrase, key, context) for phrases that count only in context (never spelling-matched);
        `exact_only`: keys whose names are never the target of a spelling match."""
        self._phrases: dict[tuple[str, ...], str] = {}
        for phrase, key in entries:
            words = tuple(tokens(phrase))
            if words:
                self._phrases.setdefault(words, key)
        self._contexts: dict[tuple[str, ...], Context] = {}
        for phrase, key, context in contexts:
            words = tuple(tokens(phrase))
            if words and words not in self._phrases:
                self._phrases[words] = key
                self._contexts[words] = Context(
                    frozenset(w for p in context.requires for w in tokens(p)),
                    frozenset(w for p in context.excludes for w in tokens(p)),
                )
        no_spelling = frozenset(exact_only)
        self._longest = max((len(p) for p in self._phrases), default=1)
        # Single words by length: a close spelling differs in length by at most a few letters, so only
        # those buckets are compared (difflib over the whole vocabulary dominated batch time).
        self._by_length: dict[int, list[str]] = {}
        for words, key in self._phrases.items():
            if words in self._contexts or key in no_spelling:
                continue
            if len(words) == 1 and len(words[0]) >= FUZZY_MIN_LENGTH:
                self._by_length.setdefault(len(words[0]), []).append(words[0])
        self._spelling_cache: dict[str, tuple[str, float] | None] = {}
        self._found: dict[tuple[str, bool], tuple[Match, ...]] = {}

    def find(self, text: str, *, fuzzy: bool = True) -> list[Match]:
        """Every entry named in `text`, in the order they appear (an entry at most once)."""
        return list(self.matches(text, fuzzy=fuzzy))

    def matches(self, text: str, *, fuzzy: bool = True) -> tuple[Match, ...]:
        """`find` as the remembered tuple itself (immutable, so shared safely): no copy for a caller that reads."""
        key = (text, fuzzy)
        cached = self._found.get(key)
        if cached is None:
            if len(self._found) >= CACHE_LIMIT:
                self._found.clear()
            cached = self._found[key] = tuple(self._find(text, fuzzy))
        return cached

    def _find(self, text: str, fuzzy: bool) -> list[Match]:
        words = tokens(text)
        found: list[Match] = []
        seen: set[str] = set()
        i = 0
        while i < len(words):
            hit = self._exact_at(words, i)
            if hit is None and fuzzy:
                hit = self._spelling_at(words, i)
            if hit is None:
                i += 1
                continue
            key, length, method, score = hit
            negated = any(w in NEGATIONS for w in words[max(0, i - 3) : i])
            if key not in seen:
                seen.add(key)
                found.append(Match(key, " ".join(words[i : i + length]), method, score, negated))
            i += length
        return found

    def _exact_at(self, words: list[str], i: int) -> tuple[str, int, str, float] | None:
        for length in range(min(self._longest, len(words) - i), 0, -1):
            phrase = tuple(words[i : i + length])
            key = self._phrases.get(phrase)
            if key is None:
                continue
            context = self._contexts.get(phrase)
            if context is None:
                return key, length, "exact", 1.0
            if context.allows(set(words[:i]) | set(words[i + length :])):
                return key, length, "context", 1.0
        return None

    def _spelling_at(self, words: list[str], i: int) -> tuple[str, int, str, float] | None:
        word = words[i]
        if len(word) < FUZZY_MIN_LENGTH:
            return None
        if word not in self._spelling_cache:
            if len(self._spelling_cache) >= CACHE_LIMIT:
                self._spelling_cache.clear()
            self._spelling_cache[word] = self._closest(word)
        hit = self._spelling_cache[word]
        if hit is None:
            return None
        return self._phrases[(hit[0],)], 1, "spelling", hit[1]

    def _closest(self, word: str) -> tuple[str, float] | None:
        # ratio = 2*M/(a+b) >= 0.85 is impossible when the lengths differ by more than 15 %
        slack = int(len(word) * (1 - FUZZY_CUTOFF) / FUZZY_CUTOFF) + 1
        candidates = [
            w
            for n in range(len(word) - slack, len(word) + slack + 1)
            for w in self._by_length.get(n, [])
            if w[:SPELLING_PREFIX] == word[:SPELLING_PREFIX]
        ]
        close = difflib.get_close_matches(word, candidates, n=2, cutoff=FUZZY_CUTOFF)
        if not close:
            return None
        scores = [difflib.SequenceMatcher(None, word, c).ratio() for c in close]
        if (
            len(close) == 2
            and self._phrases[(close[0],)] != self._phrases[(close[1],)]
            and scores[0] - scores[1] < 0.05
        ):
            return None  # as close to two different entries (hypertension / hypotension): no guess
        return close[0], round(scores[0], 3)
