"""Shared helpers for the monitoring tests: a second replica, and the plan written to disk."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from components import config as stack_config
from tests.conftest import distinct_secrets
from tools.plan import __main__ as plan_main
from tools.plan import engine


def with_replicas(sections: dict[str, Any], replicas: int) -> dict[str, Any]:
    sections = copy.deepcopy(sections)
    mon = sections["monitoring"]
    mon["replicas"] = replicas
    extra = [{"name": "mon-2", "vmid": 201, "node": "pve3", "address": "10.0.20.11/24", "gateway": "10.0.20.1"}]
    mon["hosts"] = mon["hosts"][:1] + extra[: replicas - 1]
    return sections


def write_plan(sections: dict[str, Any], out: Path) -> dict[str, str]:
    """Run `python -m tools.plan` on these sections; returns the secret values it was given."""
    config = stack_config.validate(sections)
    secrets = distinct_secrets(config)
    stack_file = out.parent / f"{out.name}-Pulumi.test.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"obsstack:{k}": v for k, v in sections.items()}}))
    secrets_file = out.parent / f"{out.name}-secrets.yaml"
    secrets_file.write_text(yaml.safe_dump(secrets))
    code = plan_main.main(
        [
            "--stack",
            "test",
            "--stack-file",
            str(stack_file),
            "--out",
            str(out),
            "--secrets",
            str(secrets_file),
            "--quiet",
        ]
    )
    assert code == 0
    return secrets


def generated_secret_values() -> list[str]:
    """Values the mock engine gives generated secrets (passwords, hashes, private keys)."""
    mocked = [engine.MOCK_OUTPUTS["random:index/randomPassword:RandomPassword"]("credentials-api", {})]
    mocked.append(engine.MOCK_OUTPUTS["random:index/randomPassword:RandomPassword"]("credentials-scrape", {}))
    values = [m["result"] for m in mocked] + [mocked[0]["bcryptHash"]]
    values.append("mock-pki-ca-key")
    return values
