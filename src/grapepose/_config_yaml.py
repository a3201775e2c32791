"""YAML of config files and `key=value` overrides, read within bounds.

A config is a few kilobytes of plain values. `yaml.safe_load` alone accepts a 466-byte file whose
nested aliases stand for gigabytes once anything walks the value (a check, a message, a copy), and
recurses once per nesting level. Here a file is refused above `MAX_CONFIG_BYTES`, a document nested
deeper than `MAX_DEPTH` levels, one whose aliases expand to more than `MAX_VALUES` values, and one
whose alias refers to itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from grapepose.errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_VALUES", "load_yaml", "read_config_yaml"]

MAX_CONFIG_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_VALUES = 100_000


class _Refused(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses deep nesting while composing (the composer recurses per level)."""

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _check_expansion(root: Node) -> None:
    """Refuse a node graph whose aliases expand to more than `MAX_VALUES` values, or refer to themselves.

    Sizes are memoised per node, so the walk costs the distinct nodes, not the expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise _Refused("a YAML alias refers to the value that contains it")
            return sizes[key]
        sizes[key] = -1
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _Refused(f"YAML aliases expand to more than {MAX_VALUES} values")
        sizes[key] = total
        return total

    size(root)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)` within the bounds above.

    Raises:
        ConfigError: the text is out of bounds (the message has no location: callers add it).
        yaml.YAMLError: the text is not valid YAML.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise ConfigError(str(e)) from None
    finally:
        loader.dispose()


def read_config_yaml(path: Path) -> Any:
    """The parsed YAML of config file `path`.

    Raises:
        ConfigError: one line naming the file: missing, too large, unreadable, not valid YAML or out of bounds.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes is too large for a config file (at most {MAX_CONFIG_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not valid UTF-8)") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
