"""YAML as operators write it: no anchors/aliases, keys in the order given, wide lines."""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False, width=120, default_flow_style=False)
