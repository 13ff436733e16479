"""The real Pulumi CLI (built by `make engine`) on a local file backend: what the mock engine
cannot show. Without the provider plugins (the module proxy refuses them, see tools/engine), these
run programs of component resources: URN aliases and secrets in state, as the engine handles them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

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


def program(
    type_: str, parent_name: str | None = None, aliases: list[pulumi.Alias] | None = None
) -> Callable[[], None]:
    def run() -> None:
        parent = Part(parent_name, "obsstack:test:Group") if parent_name else None
        Part("datastore-main", type_, pulumi.ResourceOptions(parent=parent, aliases=aliases))
        pulumi.export("token", pulumi.Output.secret(SECRET_VALUE))

    return run


def changes(tmp_path: Path, first: Callable[[], None], second: Callable[[], None]) -> dict[str, int]:
    stack = engine.inline_stack(first, tmp_path)
    stack.up(on_output=lambda _line: None)
    stack.workspace.program = second
    return dict(stack.preview(on_output=lambda _line: None).change_summary)


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(
            program("obsstack:pbs:PbsServer", aliases=[pulumi.Alias(type_="obsstack:pbs:Server")]),
            {"same": 2},
            id="type-renamed-with-alias",
        ),
        pytest.param(program("obsstack:pbs:PbsServer"), {"same": 1, "create": 1, "delete": 1}, id="type-renamed-bare"),
        pytest.param(
            program(
                "obsstack:pbs:Server", parent_name="pbs", aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
            ),
            {"same": 2, "create": 1},
            id="moved-under-parent-with-alias",
        ),
    ],
)
def test_a_moved_component_keeps_its_state_only_with_an_alias(
    tmp_path: Path, second: Callable[[], None], expected: dict[str, int]
) -> None:
    assert changes(tmp_path, program("obsstack:pbs:Server"), second) == expected


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
