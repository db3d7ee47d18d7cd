"""Globs over browse-name paths (``Plant/Line1/**``), for ``--include`` and ``--exclude``.

A path is the browse names from the browse root, joined by ``/`` (``Plant/Line1/Temp``).
In a pattern, ``**`` is any number of levels (none included), and every other level is an
:mod:`fnmatch` pattern of one name, case-sensitive: ``*`` is any name (one level), ``?`` one
character, ``[ab]`` one of them. ``Plant/*/Temp`` matches ``Plant/Line1/Temp``;
``Plant/**`` matches everything below ``Plant``; ``**/Temp*`` every name starting with
``Temp`` at any depth.

Besides matching a whole path, :class:`PathFilter` tells whether anything below a path can
still be wanted, so that a browse does not descend where every result would be left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

ANY_DEPTH = "**"


def split_glob(pattern: str) -> tuple[str, ...]:
    """The levels of ``pattern`` (``Plant/**`` is ``("Plant", "**")``).

    Raises:
        ValueError: the pattern is empty or has an empty level (``a//b``).
    """
    text = pattern.strip().strip("/")
    levels = tuple(text.split("/")) if text else ()
    if not levels or any(not level for level in levels):
        raise ValueError(f"{pattern!r} is not a browse-path glob (for example Plant/Line1/**)")
    return levels


def _advance(pattern: Sequence[str], states: frozenset[int], name: str) -> frozenset[int]:
    """The positions in ``pattern`` reachable after matching one more level, ``name``."""
    found: set[int] = set()
    for i in _closure(pattern, states):
        if i >= len(pattern):
            continue
        level = pattern[i]
        if level == ANY_DEPTH:
            found.add(i)  # ** takes this level and may take more
        elif fnmatchcase(name, level):
            found.add(i + 1)
    return frozenset(found)


def _closure(pattern: Sequence[str], states: Iterable[int]) -> set[int]:
    """``states`` with every position a ``**`` may skip to (it may take no level)."""
    found = set(states)
    stack = list(found)
    while stack:
        i = stack.pop()
        if i < len(pattern) and pattern[i] == ANY_DEPTH and i + 1 not in found:
            found.add(i + 1)
            stack.append(i + 1)
    return found


def _states(pattern: Sequence[str], path: Sequence[str]) -> set[int]:
    states = frozenset({0})
    for name in path:
        states = _advance(pattern, states, name)
        if not states:
            return set()
    return _closure(pattern, states)


def matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """Whether ``pattern`` (levels) matches the whole of ``path`` (names)."""
    return len(pattern) in _states(pattern, path)


def may_match_below(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """Whether ``pattern`` may match some path that extends ``path`` by one level or more."""
    return any(i < len(pattern) for i in _states(pattern, path))


def matches_all_below(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """Whether ``pattern`` matches every path that extends ``path`` (it ends in ``**``)."""
    return any(
        i < len(pattern) and all(level == ANY_DEPTH for level in pattern[i:])
        for i in _states(pattern, path)
    )


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Which browse paths are wanted: any include (all when none), and no exclude.

    Attributes:
        include: patterns, as levels, of which a wanted path matches one.
        exclude: patterns of which a wanted path matches none.
    """

    include: tuple[tuple[str, ...], ...] = ()
    exclude: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> PathFilter:
        """The filter of ``--include`` and ``--exclude`` patterns.

        Raises:
            ValueError: a pattern is malformed.
        """
        return cls(tuple(map(split_glob, include)), tuple(map(split_glob, exclude)))

    def wants(self, path: Sequence[str]) -> bool:
        """Whether the node at ``path`` is wanted."""
        if self.include and not any(matches(p, path) for p in self.include):
            return False
        return not any(matches(p, path) for p in self.exclude)

    def descend(self, path: Sequence[str]) -> bool:
        """Whether a node below ``path`` may be wanted: false where browsing is wasted."""
        if any(matches_all_below(p, path) for p in self.exclude):
            return False
        return not self.include or any(may_match_below(p, path) for p in self.include)
