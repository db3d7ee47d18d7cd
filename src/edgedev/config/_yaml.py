"""Parse YAML documents fast, with exactly PyYAML's safe-loader results and errors.

libyaml (``CSafeLoader``) parses in C, but PyYAML then builds a node object per value, asks a
Python resolver for every scalar's tag and constructs every object through several Python
calls, which was most of the time spent loading a fleet of a thousand Devices. :func:`load_all`
keeps libyaml's parser and changes only the Python side, not its results:

* documents made of plain mappings, sequences and scalars (every KubeEdge file) are built
  straight from libyaml's events, without nodes;
* the implicit tag of a plain scalar depends only on its text and its style, so it is
  computed once per distinct text;
* identical scalars share one object, which keeps the thousands of repeated keys and values of
  a fleet file in memory once.

Anything else (anchors and aliases, explicit tags, merge keys, complex keys, timestamps,
syntax errors) makes it parse the text again with :class:`FastSafeLoader`, PyYAML's own
composer and constructor (with the same tag cache, and a node walker for plain documents), so
results and error messages are PyYAML's.

Loading is bounded before any model sees the data: a file's text is at most
:data:`MAX_TEXT` characters, and a document whose anchors and aliases would expand to more than
:data:`MAX_NODES` nodes (the "billion laughs") is refused with the line where the expansion
crosses the limit, without being expanded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it: parses five times faster than pure Python."""

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SHARED_SCALARS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")
)
"""Tags whose values are immutable, so that equal scalars may share one object."""


_MISSING: Any = object()

MAX_TEXT = 32 * 1024 * 1024
"""Most characters in one YAML file (a fleet of a thousand Devices takes about 2 MB)."""
MAX_NODES = 200_000
"""Most nodes one document may expand to through aliases (shared nodes counted each time)."""


class YAMLLimitError(yaml.MarkedYAMLError):
    """A YAML text is beyond :data:`MAX_TEXT`, or its aliases expand beyond :data:`MAX_NODES`."""


def _check_expansion(root: Node, limit: int) -> None:
    """Refuse a document whose aliases expand to more than ``limit`` nodes, without expanding.

    Each distinct node is sized once (its own node plus its children's sizes, a shared child
    counted at every use), so the check costs the document's distinct nodes, not its expansion.

    Raises:
        YAMLLimitError: at the innermost node whose expansion crosses ``limit``, or at a node
            that contains itself.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if ident in sizes:
            continue
        if type(node) is ScalarNode:
            sizes[ident] = 1
            continue
        children = (
            [n for pair in node.value for n in pair] if type(node) is MappingNode else node.value
        )
        if children_done:
            open_.discard(ident)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > limit:
                raise YAMLLimitError(
                    problem=f"aliases expand this document to more than {limit} nodes",
                    problem_mark=node.start_mark,
                )
            sizes[ident] = size
            continue
        if ident in open_:
            raise YAMLLimitError(
                problem="an alias refers to a node that contains it", problem_mark=node.start_mark
            )
        open_.add(ident)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise YAMLLimitError(
                    problem="an alias refers to a node that contains it",
                    problem_mark=child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))


class _Fallback(Exception):
    """The document needs PyYAML's general constructor."""


class FastSafeLoader(_BaseLoader):  # type: ignore[misc]
    """``yaml.CSafeLoader`` (or ``SafeLoader``) with the fast paths described above."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[tuple[str, Any], str] = {}
        self._scalars: dict[tuple[str, str], Any] = {}

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> Any:
        """The tag of a node: cached for scalars, which depend only on text and style."""
        if kind is not ScalarNode or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag

    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        """Track the path for path resolvers; the safe loader has none."""
        if self.yaml_path_resolvers:
            super().descend_resolver(current_node, current_index)

    def ascend_resolver(self) -> None:
        """Track the path for path resolvers; the safe loader has none."""
        if self.yaml_path_resolvers:
            super().ascend_resolver()

    def construct_document(self, node: Node) -> Any:
        """The document's object: by the fast path when it applies, else PyYAML's."""
        try:
            return self._build(node, {}, set())
        except (_Fallback, RecursionError):
            return super().construct_document(node)

    def _scalar(self, node: Node) -> Any:
        tag = node.tag
        if tag not in _SHARED_SCALARS:
            raise _Fallback
        value = node.value if tag == _STR else self.yaml_constructors[tag](self, node)
        self._scalars[(tag, node.value)] = value
        return value

    def _build(self, node: Node, done: dict[int, Any], open_: set[int]) -> Any:
        scalars = self._scalars
        if type(node) is ScalarNode:
            value = scalars.get((node.tag, node.value), _MISSING)
            return self._scalar(node) if value is _MISSING else value
        ident = id(node)
        if ident in done:
            return done[ident]  # an alias: the same object, as PyYAML gives
        if ident in open_:
            raise _Fallback  # a cycle
        open_.add(ident)
        tag = node.tag
        result: Any
        if type(node) is MappingNode and tag == _MAP:
            result = {}
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode:
                    raise _Fallback  # unhashable, or PyYAML's message
                key = scalars.get((key_node.tag, key_node.value), _MISSING)
                if key is _MISSING:
                    if key_node.tag not in _SHARED_SCALARS:
                        raise _Fallback  # ``<<`` and ``=`` keys have tags of their own
                    key = self._scalar(key_node)
                if type(value_node) is ScalarNode:
                    value = scalars.get((value_node.tag, value_node.value), _MISSING)
                    if value is _MISSING:
                        value = self._scalar(value_node)
                else:
                    value = self._build(value_node, done, open_)
                result[key] = value
        elif type(node) is SequenceNode and tag == _SEQ:
            result = [self._build(item, done, open_) for item in node.value]
        else:
            raise _Fallback
        open_.discard(ident)
        done[ident] = result
        return result


class _EventBuilder:
    """Builds documents from libyaml's events: the containers open at each level.

    Each event is one step: a scalar is resolved and placed, a mapping or sequence opened,
    or closed and placed; a finished document is taken with :meth:`document`. Whatever the
    fast path does not build raises :class:`_Fallback`.
    """

    __slots__ = ("_keys", "_loader", "_resolve", "_root", "_scalars", "_stack", "_tags")

    def __init__(self, loader: FastSafeLoader) -> None:
        self._loader = loader
        self._tags = loader._tags
        self._scalars = loader._scalars
        self._resolve = super(FastSafeLoader, loader).resolve
        self._stack: list[Any] = []
        """The open containers, outermost first."""
        self._keys: list[Any] = []
        """Per open container: a mapping's pending key, or ``_MISSING``."""
        self._root: Any = _MISSING

    def scalar(self, event: ScalarEvent) -> None:
        """Place a plain scalar's value (shared with equal scalars)."""
        if event.anchor is not None or event.tag is not None:
            raise _Fallback
        text, implicit = event.value, event.implicit
        tag = self._tags.get((text, implicit))
        if tag is None:
            tag = self._tags[(text, implicit)] = self._resolve(ScalarNode, text, implicit)
        value = self._scalars.get((tag, text), _MISSING)
        if value is _MISSING:
            # libyaml's marks (yaml._yaml.Mark) serve as PyYAML's; the stubs name only those
            node = ScalarNode(tag, text, event.start_mark, event.end_mark)  # type: ignore[arg-type]
            value = self._loader._scalar(node)
        self._place(value, tag in _SHARED_SCALARS)

    def start(self, event: MappingStartEvent | SequenceStartEvent, container: Any) -> None:
        """Open ``container`` (an empty dict or list) for a mapping or a sequence."""
        if event.anchor is not None or event.tag is not None:
            raise _Fallback
        if self._stack and type(self._stack[-1]) is dict and self._keys[-1] is _MISSING:
            raise _Fallback  # a mapping or sequence as a key
        self._stack.append(container)
        self._keys.append(_MISSING)

    def end(self) -> None:
        """Close the innermost container and place it."""
        self._keys.pop()
        self._place(self._stack.pop(), False)

    def document(self) -> Any:
        """The document that just ended."""
        root, self._root = self._root, _MISSING
        return root

    def _place(self, value: Any, may_be_key: bool) -> None:
        """Put ``value`` where it goes: the document, a list, a mapping's key or its value."""
        stack = self._stack
        if not stack:
            self._root = value
        elif type(stack[-1]) is list:
            stack[-1].append(value)
        elif self._keys[-1] is _MISSING:
            if not may_be_key:
                raise _Fallback  # ``<<`` and ``=`` keys have tags of their own
            self._keys[-1] = value
        else:
            stack[-1][self._keys[-1]] = value
            self._keys[-1] = _MISSING


def _event_documents(text: str) -> Iterator[Any]:
    """The documents of ``text`` built straight from libyaml's events, without nodes.

    Raises:
        _Fallback: the text needs PyYAML's composer or constructor (anchors, aliases, explicit
            tags, merge keys, complex keys, other scalar types) or has a syntax error.
    """
    loader = FastSafeLoader(text)
    try:
        if loader.yaml_path_resolvers:
            raise _Fallback
        build = _EventBuilder(loader)
        # bound once: this loop runs per event, hundreds of thousands in a fleet file
        next_event, scalar, start, end = loader.get_event, build.scalar, build.start, build.end
        while True:
            try:
                event = next_event()
            except yaml.YAMLError:
                raise _Fallback from None  # a syntax error: PyYAML's message
            kind = type(event)
            if kind is ScalarEvent:
                scalar(event)
            elif kind is MappingStartEvent:
                start(event, {})
            elif kind is SequenceStartEvent:
                start(event, [])
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                end()
            elif kind is DocumentEndEvent:
                yield build.document()
            elif kind is StreamEndEvent:
                return
            elif kind is not DocumentStartEvent and kind is not StreamStartEvent:
                raise _Fallback  # an alias
    finally:
        loader.dispose()


def load_all(text: str, *, max_text: int = MAX_TEXT, max_nodes: int = MAX_NODES) -> Iterator[Any]:
    """Every document of ``text``, as ``yaml.load_all(text, Loader=yaml.CSafeLoader)`` gives.

    Args:
        text: the YAML text.
        max_text: most characters accepted.
        max_nodes: most nodes one document may expand to through aliases.

    Raises:
        YAMLLimitError: ``text`` is longer than ``max_text``, or a document's aliases expand
            beyond ``max_nodes`` (with the line where they do).
        yaml.YAMLError: as PyYAML raises it, after the documents before the mistake.
    """
    if len(text) > max_text:
        raise YAMLLimitError(problem=f"{len(text)} characters, over the limit of {max_text}")
    done = 0
    try:
        for document in _event_documents(text):
            done += 1
            yield document
        return
    except _Fallback:
        pass
    loader = FastSafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if done:
                done -= 1
                continue
            if node is None:
                yield None
                continue
            _check_expansion(node, max_nodes)
            yield loader.construct_document(node)
    finally:
        loader.dispose()
