"""Did-you-mean: the nearest known name to a misspelt one."""

from __future__ import annotations

from typing import Iterable


def _normalise(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate: same letters ignoring case, `_` and `-` first, else within edit
    distance 2 (1 for words of three letters or fewer), else None."""
    candidates = list(candidates)
    key = _normalise(word)
    for candidate in candidates:
        if _normalise(candidate) == key:
            return candidate
    limit = 1 if len(key) <= 3 else 2
    # ties go to the candidate sharing the longest prefix: `yyy` is `yyyy`, not `yy`
    scored = sorted(
        (_distance(key, norm), -_common_prefix(key, norm), c)
        for c in candidates
        for norm in [_normalise(c)]
    )
    if scored and scored[0][0] <= limit:
        return scored[0][2]
    return None


def did_you_mean(word: str, candidates: Iterable[str], template: str = "`{}`") -> str | None:
    match = nearest(word, candidates)
    return f"did you mean {template.format(match)}?" if match is not None else None
