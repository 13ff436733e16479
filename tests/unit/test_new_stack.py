"""tools/new_stack: the stack file it writes plans on the first try; bad or missing facts exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import config as stack_config
from tools.new_stack.__main__ import main as new_stack
from tools.plan.__main__ import main as plan

FINGERPRINT = "9a:41:c2:07:5e:d3:88:1b:60:f4:2c:a9:13:7e:d5:04:b8:6f:92:3a:c1:58:e7:0d:24:9b:66:af:31:c8:05:e2"
FACTS = {
    "--pve-endpoint": "https://pve1.lab.example.net:8006/",
    "--node": "pve1=10.0.10.11",
    "--pbs-host": "pbs-dev=10.0.40.20",
    "--pbs-fingerprint": FINGERPRINT,
    "--monitoring-address": "10.0.40.10/24",
    "--gateway": "10.0.40.1",
}


def flags(facts: dict[str, str]) -> list[str]:
    return [item for pair in facts.items() for item in pair]


def never_asked(prompt: str) -> str:
    raise AssertionError(f"asked {prompt!r} although every fact was given")


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--node", "pve1=10.0.10.11,pve2=10.0.10.12", "--monitoring-node", "pve2", "--vlan", "40", "--dns", "1.1.1.1"],
        ["--pbs-datastore", "dev-store", "--scratch-range", "9700-9799", "--vmid", "700", "--backup-schedule", "03:00"],
        ["--storage", "local", "--deadman-url", "https://hc-ping.example.net/abc"],
    ],
    ids=["minimal", "two-nodes-vlan-dns", "own-datastore-and-vmids", "storage-local-and-deadman"],
)
def test_written_stack_plans_with_exit_0(tmp_path: Path, extra: list[str], capsys) -> None:
    facts = flags(FACTS) + extra
    assert new_stack(["--stack", "dev", *facts, "--out-dir", str(tmp_path)], ask=never_asked) == 0
    stack_file = tmp_path / "Pulumi.dev.yaml"
    out = capsys.readouterr().out
    config = stack_config.load_file(stack_file)
    for key in config.secret_key_names():
        assert f"--secret obsstack:{key} " in out
    assert "#" in stack_file.read_text().splitlines()[0]  # commented
    code = plan(["--stack", "dev", "--stack-file", str(stack_file), "--out", str(tmp_path / "plan"), "--quiet"])
    assert code == 0
    assert config.stack_names.backup_job == "obs-dev-nightly"


def test_missing_facts_are_asked_for_on_a_terminal(tmp_path: Path) -> None:
    answers = iter(FACTS.values())  # asked in the order of tools.new_stack's FACTS
    asked = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return f"  {next(answers)}  "  # typed with stray blanks

    assert new_stack(["--stack", "dev", "--out-dir", str(tmp_path)], ask=ask) == 0
    assert len(asked) == len(FACTS)
    assert stack_config.load_file(tmp_path / "Pulumi.dev.yaml").proxmox.endpoint == FACTS["--pve-endpoint"]


def test_a_missing_fact_without_a_terminal_names_the_flag(tmp_path: Path, capsys) -> None:
    facts = {k: v for k, v in FACTS.items() if k != "--pbs-fingerprint"}
    assert new_stack(["--stack", "dev", *flags(facts), "--out-dir", str(tmp_path)]) == 2
    assert "--pbs-fingerprint is missing" in capsys.readouterr().err
    assert not (tmp_path / "Pulumi.dev.yaml").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"--node": "pve1"}, "--node 'pve1': write name=address"),
        ({"--monitoring-address": "10.0.40.300/24"}, "--monitoring-address"),
        ({"--gateway": "10.0.99.1"}, "gateway 10.0.99.1 must be another address inside 10.0.40.0/24"),
        ({"--pbs-fingerprint": "nope"}, "obsstack:pbs.fingerprint"),
    ],
    ids=["node-without-address", "bad-cidr", "gateway-outside", "bad-fingerprint"],
)
def test_bad_facts_exit_2_naming_the_field(tmp_path: Path, capsys, override: dict[str, str], message: str) -> None:
    facts = FACTS | override
    assert new_stack(["--stack", "dev", *flags(facts), "--out-dir", str(tmp_path)], ask=never_asked) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "Pulumi.dev.yaml").exists()


def test_a_stack_name_too_long_for_pbs_job_ids_asks_for_a_shorter_one(tmp_path: Path, capsys) -> None:
    argv = ["--stack", "a-very-long-environment", *flags(FACTS), "--out-dir", str(tmp_path)]
    assert new_stack(argv, ask=never_asked) == 2
    assert "names.scope" in capsys.readouterr().err


def test_an_existing_stack_file_is_not_overwritten(tmp_path: Path, capsys) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("keep me\n")
    assert new_stack(["--stack", "dev", *flags(FACTS), "--out-dir", str(tmp_path)], ask=never_asked) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "Pulumi.dev.yaml").read_text() == "keep me\n"
