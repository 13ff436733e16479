"""PBS token, passwords and the encryption key stay secret everywhere the plan records them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from components.proxmox import storage
from components.render import host_files
from tests.conftest import distinct_secrets
from tools.plan import engine

PBS = "proxmoxve:storage/pbs:Pbs"


def test_pbs_storage_token_and_key_are_secret_inputs(example_plan) -> None:
    pbs = example_plan.one(PBS)
    assert pbs.inputs["password"] == engine.SECRET
    assert pbs.inputs["encryptionKey"] == engine.SECRET
    assert pbs.inputs["username"] == "obsstack@pbs!pve"  # the token id is not a secret
    assert {"password", "encryptionKey", "generatedEncryptionKey"} <= set(pbs.options["additionalSecretOutputs"])


def test_generated_encryption_key_when_none_is_configured(run_program, example_sections) -> None:
    example_sections["pbs"]["encryption_key_secret"] = None
    pbs = run_program(example_sections).one(PBS)
    assert pbs.inputs["generateEncryptionKey"] is True
    assert "encryptionKey" not in pbs.inputs
    # The engine masks outputs listed here (the mock monitor records them unmasked).
    assert "generatedEncryptionKey" in pbs.options["additionalSecretOutputs"]


PROGRAM = textwrap.dedent(
    """
    import pulumi
    from components import config as stack_config
    from components.proxmox.storage import BackupStorage, BackupStorageArgs

    config = stack_config.load()
    secrets = stack_config.load_secrets(config)
    nodes = tuple(config.pve_nodes())
    s = BackupStorage("s", BackupStorageArgs(config.proxmox, config.pbs, "10.0.10.20", secrets, nodes, "root", "key"))
    pulumi.export("encryptionKey", s.encryption_key)
    pulumi.export("storageId", s.pbs_storage_id)
    """
)


@pytest.mark.parametrize("configured", [True, False], ids=["configured-key", "generated-key"])
def test_encryption_key_output_is_secret(tmp_path: Path, example_sections, configured: bool) -> None:
    if not configured:
        example_sections["pbs"]["encryption_key_secret"] = None
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    from components import config as stack_config

    secrets = distinct_secrets(stack_config.validate(example_sections))
    result = engine.run("prod", example_sections, secrets, program=program)
    assert result.outputs == {"encryptionKey": engine.SECRET, "storageId": "pbs-main"}


def test_smb_password_is_secret(run_program, example_sections) -> None:
    example_sections["proxmox"]["durable_storages"].append(
        {"name": "smb-loki", "type": "cifs", "server": "10.0.10.40", "export": "loki", "username": "loki",
         "password_secret": "smbLokiPassword"}
    )  # fmt: skip
    cifs = run_program(example_sections).one("proxmoxve:storage/cifs:Cifs")
    assert cifs.inputs["password"] == engine.SECRET
    assert "password" in cifs.options["additionalSecretOutputs"]


def test_token_command_output_is_secret(example_plan) -> None:
    token = example_plan.one("command:remote:Command", "pbs-pve-token")
    assert {"stdout", "stderr"} <= set(token.options["additionalSecretOutputs"])


def test_no_secret_value_anywhere_in_the_plan(example_plan, example_config, example_inventory) -> None:
    secrets = distinct_secrets(example_config)
    recorded = json.dumps(
        [{"inputs": r.inputs, "outputs": r.outputs, "options": r.options} for r in example_plan.resources]
    )
    recorded += json.dumps(example_plan.outputs)
    recorded += "".join(f.content for f in host_files(example_config, example_inventory))
    for key, value in secrets.items():
        assert value not in recorded, f"secret {key} leaked into the plan"
    assert "S3CR3T" not in recorded


@pytest.mark.parametrize(
    ("configured", "expected"),
    [("obsstack@pbs!pve=0f1e-secret", "0f1e-secret"), ("0f1e-secret", "0f1e-secret")],
    ids=["as-pbs-prints-it", "bare-secret"],
)
def test_token_value_forms(configured: str, expected: str) -> None:
    assert storage.token_value(configured, "obsstack@pbs!pve") == expected
