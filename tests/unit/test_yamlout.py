"""The C emitter (libyaml) writes the bytes PyYAML's pure-Python emitter writes, for what we render."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.render import yamlout
from components.render.rules import builders

DOCUMENTS = {
    "plain": {"scrape_configs": [{"job_name": "node", "static_configs": [{"targets": ["10.0.10.5:9100"]}]}]},
    "quoting": {"a": "yes", "b": "0755", "c": "*.lab", "d": ": x", "e": "#x", "f": "", "g": "null", "h": "1e3"},
    "unicode-and-controls": {"summary": "Sauvegarde échouée ✗", "bell": "a\x07b", "tab": "a\tb", "bom": "\ufeffx"},
    "multi-line": {"script": "set -eu\nexec 3>&1\n", "trailing": "x\n\n", "leading": "  indented\nline"},
    "long-line": {"expr": "sum by (job) (" + " + ".join(f'up{{job="j{i}"}}' for i in range(40)) + ")"},
    "scalars": {"int": 3, "float": 0.5, "bool": True, "none": None, "list": [], "map": {}},
}


def pure_python(document: Any, dumper: type[yaml.SafeDumper], **kwargs: Any) -> str:
    class Pure(yaml.SafeDumper):
        ignore_aliases = dumper.ignore_aliases
        yaml_representers = dumper.yaml_representers

    return yaml.dump(document, Dumper=Pure, **kwargs)


@pytest.mark.parametrize("document", list(DOCUMENTS.values()), ids=list(DOCUMENTS))
def test_host_files_are_emitted_byte_for_byte_as_before(document: Any) -> None:
    shared = {"document": [document, document]}  # repeated objects: still no anchors
    expected = pure_python(shared, yamlout._NoAliases, sort_keys=False, width=120, default_flow_style=False)
    assert yamlout.dump(shared) == expected


@pytest.mark.parametrize("document", list(DOCUMENTS.values()), ids=list(DOCUMENTS))
def test_rule_files_are_emitted_byte_for_byte_as_before(document: Any) -> None:
    rules = [{"alert": "A", "expr": builders.expr("up\n  == 0"), "annotations": document}]
    groups = [{"name": "area", "rules": rules}]
    expected = pure_python({"groups": groups}, builders._Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    assert builders.dump_groups("area", groups) == builders.HEADER.format(area="area") + expected


def test_a_next_line_character_differs_in_form_only() -> None:
    """U+0085 (NEL) is the one difference found: libyaml escapes it as ``\\N``, PyYAML breaks the
    line in a quoted scalar. Both read back as the same string."""
    groups = [{"name": "area", "rules": [{"alert": "A", "expr": "up", "annotations": {"nel": "a\x85b"}}]}]
    assert yaml.safe_load(builders.dump_groups("area", groups)) == {"groups": groups}
    assert yaml.safe_load(yamlout.dump(groups)) == groups
