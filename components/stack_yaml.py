"""A total reader for stack files: any file gives a document or one clear error, never a traceback.

PyYAML's safe loader accepts what a stack file must not contain: YAML 1.1 implicit timestamps
(``2026-01-01`` becomes a date the JSON writer cannot serialise), tags (``!!binary``, ``!!set``),
anchors and aliases (a recursive alias, or a "billion laughs" bomb that exhausts memory), unbounded
nesting (a RecursionError), duplicate keys (the last one silently wins) and non-finite numbers.
This loader refuses each of them with the line it is on, and keeps dates as the strings they were
written as.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
# The only types a stack file holds; everything else (timestamps, binary, sets, ...) is refused.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class StackFileError(ValueError):
    """The file is not a stack file this program can read: what and where, and the fix."""


class _Resolver(Resolver):
    pass


# Dates stay strings: drop the YAML 1.1 timestamp resolver (the rest of Resolver's set is kept).
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}


class _Composer(Composer):
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
            mark = self.peek_event().start_mark  # type: ignore[attr-defined]
            raise StackFileError(f"line {mark.line + 1}: anchors and aliases are not supported: write the value out")
        return super().compose_node(parent, index)


class _Constructor(SafeConstructor):
    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node.tag not in PLAIN_TAGS:
            raise StackFileError(
                f"line {node.start_mark.line + 1}: {node.tag.rsplit(':', 1)[-1]} values are not supported "
                "in a stack file: quote the value to make it a string"
            )
        return super().construct_object(node, deep)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=True) for key, _ in node.value]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            raise StackFileError(
                f"line {node.start_mark.line + 1}: duplicate key(s) {duplicates}: YAML keeps only the last one, "
                "write each key once"
            )
        return super().construct_mapping(node, deep)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise StackFileError(f"line {node.start_mark.line + 1}: {node.value} is not a finite number")
        return value


_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)  # type: ignore[type-var]


class _Loader(Reader, Scanner, Parser, _Composer, _Constructor, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


def _depth(node: Node, level: int = 1) -> int:
    if level > MAX_DEPTH:
        raise StackFileError(f"line {node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, SequenceNode):
        return max((_depth(child, level + 1) for child in node.value), default=level)
    if isinstance(node, MappingNode):
        return max((_depth(value, level + 1) for _, value in node.value), default=level)
    return level


def load(path: Path) -> dict[str, Any]:
    """The stack file's top-level mapping."""
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise StackFileError(f"{len(data)} bytes: a stack file is at most {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise StackFileError(f"not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    if "\0" in text:
        raise StackFileError("a NUL character: this is not a text file")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _depth(node)
        document = loader.construct_document(node)
    except (yaml.YAMLError, ConstructorError) as err:
        raise StackFileError(f"not valid YAML: {err}") from None
    except RecursionError:
        raise StackFileError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise StackFileError(
            f"the top level is a {type(document).__name__}, not a mapping: write `config:` and its keys"
        )
    return document
