"""The real Pulumi CLI (built by `make engine`) on a local file backend: what the mock engine
cannot show. Without the provider plugins (the module proxy refuses them, see tools/engine), these
run programs of component resources: URN aliases and secrets in state, as the engine handles them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

from components import aliases
from components.proxmox import vm
from tools import engine

SECRET_VALUE = "obsstack-real-engine-S3CR3T-4b1d"


@pytest.fixture(scope="module", autouse=True)
def _cli() -> None:
    # Fails, never skips: CI builds the CLI first (`make engine` in .ci/run).
    assert engine.cli_path().exists(), f"no Pulumi CLI at {engine.cli_path()}: run `make engine`"


class Part(pulumi.ComponentResource):
    def __init__(self, name: str, type_: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_, name, None, opts)
        self.register_outputs({})


def program(type_: str, opts: pulumi.ResourceOptions | None = None) -> Callable[[], None]:
    """A component of ``type_`` with a child, as the program's components have theirs."""

    def run() -> None:
        parent = Part("pbs", type_, opts)
        Part("pbs-datastore-main", "obsstack:test:Child", pulumi.ResourceOptions(parent=parent))
        pulumi.export("token", pulumi.Output.secret(SECRET_VALUE))

    return run


def changes(tmp_path: Path, first: Callable[[], None], second: Callable[[], None]) -> dict[str, int]:
    stack = engine.inline_stack(first, tmp_path)
    stack.up(on_output=lambda _line: None)
    stack.workspace.program = second
    return dict(stack.preview(on_output=lambda _line: None).change_summary)


@pytest.mark.parametrize(("new", "old"), sorted(aliases.PREVIOUS_TYPES.items()), ids=lambda t: t.rsplit(":", 1)[-1])
def test_a_renamed_component_keeps_its_state_and_its_children(tmp_path: Path, new: str, old: str) -> None:
    renamed = program(new, aliases.renamed_from(new, None))
    assert changes(tmp_path, program(old), renamed) == {"same": 3}


def test_without_the_alias_the_tree_would_be_replaced(tmp_path: Path) -> None:
    """The control: what the aliases above prevent (protected children would block it)."""
    new, old = next(iter(aliases.PREVIOUS_TYPES.items()))
    assert changes(tmp_path, program(old), program(new)) == {"same": 1, "create": 2, "delete": 2}


def test_a_component_moved_under_a_parent_keeps_its_state_with_an_alias(tmp_path: Path) -> None:
    def moved() -> None:
        group = Part("group", "obsstack:test:Group")
        pbs = Part(
            "pbs",
            "obsstack:pbs:PbsServer",
            pulumi.ResourceOptions(parent=group, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]),
        )
        Part("pbs-datastore-main", "obsstack:test:Child", pulumi.ResourceOptions(parent=pbs))

    assert changes(tmp_path, program("obsstack:pbs:PbsServer"), moved) == {"same": 3, "create": 1}


def test_the_state_holds_no_secret_in_plaintext(tmp_path: Path) -> None:
    stack = engine.inline_stack(program("obsstack:pbs:Server"), tmp_path)
    stack.up(on_output=lambda _line: None)
    # The checkpoint at rest in the file backend (the Automation API's export shows secrets).
    files = list((tmp_path / "state" / ".pulumi" / "stacks").rglob("*.json"))
    assert files
    for state in files:
        text = state.read_text()
        assert SECRET_VALUE not in text
        assert "ciphertext" in text
    assert stack.outputs()["token"].value == SECRET_VALUE  # decrypts with the passphrase


class NamedAfterIt(pulumi.ComponentResource):
    """A component whose children are named ``<name>-<role>``, as ProxmoxVm's are, given the
    aliases ProxmoxVm gives itself and (``child_aliases``) its children for ``previous_name``."""

    def __init__(self, name: str, previous_name: str | None, child_aliases: bool = True) -> None:
        super().__init__(
            "obsstack:proxmox:ProxmoxVm", name, None, pulumi.ResourceOptions(aliases=vm.renamed_from(previous_name))
        )
        for role in ("vm", "user-data", "image"):
            child_alias = vm.renamed_from(previous_name, role) if child_aliases else []
            Part(f"{name}-{role}", "obsstack:test:Child", pulumi.ResourceOptions(parent=self, aliases=child_alias))
        self.register_outputs({})


@pytest.mark.parametrize(
    ("previous_name", "child_aliases", "expected"),
    [
        ("mon-1", True, {"same": 5}),
        # The engine also derives a child's alias from its parent's when the child's name starts
        # with the parent's (pulumi's rename_component integration test); ProxmoxVm does not rely on it.
        ("mon-1", False, {"same": 5}),
        (None, False, {"same": 1, "create": 4, "delete": 4}),  # the control: what the aliases prevent
    ],
    ids=["previous-name", "component-alias-only", "no-previous-name"],
)
def test_a_renamed_monitoring_host_keeps_its_vm_state(
    tmp_path: Path, previous_name: str | None, child_aliases: bool, expected: dict[str, int]
) -> None:
    """`previous_name` on a monitoring host: its component and the children named after it (the
    protected VM among them, which a replacement would otherwise try to delete) keep their URNs' state."""

    def renamed() -> None:
        NamedAfterIt("mon-a", previous_name, child_aliases)

    assert changes(tmp_path, lambda: NamedAfterIt("mon-1", None), renamed) == expected
