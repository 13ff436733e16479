"""The pinned providers' schemas (../shared/provider-schema, read as data, never copied here)."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "provider-schema"


@functools.cache
def schemas() -> dict[str, dict[str, Any]]:
    """Package name -> schema, for every pinned provider."""
    found = {}
    for path in sorted(SCHEMA_DIR.glob("schema-*.json.gz")):
        schema = json.loads(gzip.decompress(path.read_bytes()))
        found[schema["name"]] = schema
    assert found, f"no provider schemas under {SCHEMA_DIR}"
    return found


def resource(type_token: str) -> dict[str, Any]:
    """The schema of a resource type, or of a provider for ``pulumi:providers:<pkg>``."""
    if type_token.startswith("pulumi:providers:"):
        return schemas()[type_token.rsplit(":", 1)[1]]["provider"]
    return schemas()[type_token.split(":", 1)[0]]["resources"][type_token]


def replace_on_changes(type_token: str) -> set[str]:
    """Inputs the generated SDKs mark ``replaceOnChanges``: a change replaces, never updates."""
    props = resource(type_token).get("inputProperties", {})
    return {name for name, spec in props.items() if spec.get("replaceOnChanges")}
