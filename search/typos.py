"""The one typo corrector of search: an unknown word read as the known word it is most likely a typo of.

Used for the parser's vocabulary (categories, brands, attributes) and for the catalogue's own words (titles,
bullets), with the same rules, so one query is never corrected two different ways. Edit distance and similarity
come from rapidfuzz (optimal string alignment: a swap of two letters counts one).

Rules: no correction under 4 letters, of numbers, of protected words or of common English words (wordfreq's Zipf
frequency 4.0 or more: "while", "keep", "away"; typos score under 2, "sonny" 3.6); the first letter must match;
4 letters allow only a swap or one missing letter, 5-7 letters one edit, 8+ two; ties are broken by similarity
and a remaining tie means no correction (a guess between two words is worse than none).
"""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz.distance import OSA
from rapidfuzz.fuzz import ratio
from wordfreq import zipf_frequency

_UNSET = object()
_CACHE_LIMIT = 4096
COMMON_WORD_ZIPF = 4.0  # about once per 10^5 words of English text: a word that common is meant as typed


def is_common_word(word: str) -> bool:
    """An ordinary English word that a shopper typed on purpose, never a typo of a catalogue word."""
    return zipf_frequency(word, "en") >= COMMON_WORD_ZIPF


class Corrector:
    """Built once over the known words; `correct` is cached per word."""

    def __init__(self, words: Iterable[str], *, protected: Iterable[str] = (), not_targets: Iterable[str] = ()) -> None:
        """protected: typed words never corrected; not_targets: known words never offered as a correction."""
        self.known = frozenset(words)
        self.protected = frozenset(protected)
        excluded = frozenset(not_targets)
        self._by_shape: dict[tuple[str, int], list[tuple[str, frozenset[str]]]] = {}
        for word in sorted(self.known):
            if len(word) >= 4 and word.isalpha() and word not in excluded:
                self._by_shape.setdefault((word[0], len(word)), []).append((word, frozenset(word)))
        self._cache: dict[str, str | None] = {}

    def correct(self, word: str, *, also_protected: Iterable[str] = ()) -> str | None:
        """The known word `word` is a likely typo of, or None (known, too short, protected, or no clear winner)."""
        word = word.lower()
        if word in self.protected or any(w in self.protected for w in also_protected):
            return None
        cached = self._cache.get(word, _UNSET)
        if cached is not _UNSET:
            return cached
        found = self._correct(word)
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = found
        return found

    def _correct(self, word: str) -> str | None:
        if len(word) < 4 or word in self.known or not word.isalpha() or is_common_word(word):
            return None
        limit = 1 if len(word) < 8 else 2
        letters = set(word)
        best: list[tuple[int, float, str]] = []
        for size in range(len(word) - limit, len(word) + limit + 1):
            for candidate, candidate_letters in self._by_shape.get((word[0], size), ()):
                # Cheap letter-set bound before the distance: most candidates share too few letters.
                if len(letters - candidate_letters) > limit or len(candidate_letters - letters) > limit:
                    continue
                distance = OSA.distance(word, candidate, score_cutoff=limit)
                if distance > limit:
                    continue
                if len(word) == 4 and not (len(candidate) == 5 or sorted(candidate) == sorted(word)):
                    continue  # 4 letters: a missing letter or a swap, never a substitution ("song" is not "sony")
                best.append((distance, ratio(word, candidate), candidate))
        if not best:
            return None
        best.sort(key=lambda item: (item[0], -item[1]))
        if len(best) > 1 and best[0][:2] == best[1][:2]:
            return None
        return best[0][2]
