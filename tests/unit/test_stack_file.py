"""The stack file reader is total: any file gives one clear error naming what and where, never a
traceback (issue 18's hostile files), and the example still reads exactly as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components import config as stack_config
from tests.conftest import EXAMPLE_STACK

EXAMPLE = EXAMPLE_STACK.read_text()


def nested(depth: int) -> str:
    return "config:\n  obsstack:deep: " + "[" * depth + "1" + "]" * depth + "\n"


BILLION_LAUGHS = "config:\n  obsstack:x:\n" + "".join(
    f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'lol'}]\n" for i in range(9)
)

HOSTILE: list[tuple[str, Callable[[], bytes], str]] = [
    ("list-at-top", lambda: b"- a\n- b\n", "the top level is a list, not a mapping"),
    ("scalar-at-top", lambda: b"just words\n", "the top level is a str, not a mapping"),
    ("int-at-top", lambda: b"42\n", "the top level is a int, not a mapping"),
    ("utf-16", lambda: EXAMPLE.encode("utf-16"), "not UTF-8 text"),
    ("stray-byte", lambda: EXAMPLE.encode() + b"\xff\n", "not UTF-8 text"),
    ("binary", lambda: bytes(range(256)) * 4, "not UTF-8 text"),
    ("nul", lambda: b"config:\n  obsstack:cluster: a\x00b\n", "NUL character"),
    ("binary-tag", lambda: b"config:\n  obsstack:cluster: !!binary aGVsbG8=\n", "binary values are not supported"),
    ("set-tag", lambda: b"config:\n  obsstack:cluster: !!set {a, b}\n", "set values are not supported"),
    ("python-tag", lambda: b"config:\n  obsstack:cluster: !!python/name:os.system\n", "not supported"),
    ("recursive-alias", lambda: b"config: &a\n  obsstack:x: *a\n", "aliases are not supported"),
    ("billion-laughs", BILLION_LAUGHS.encode, "aliases are not supported"),
    ("deep-nesting", lambda: nested(100_000).encode(), "nested deeper than"),
    ("moderate-nesting", lambda: nested(40).encode(), "nested deeper than 32 levels"),
    ("duplicate-key", lambda: b"config:\n  obsstack:cluster: a\n  obsstack:cluster: b\n", "duplicate key"),
    ("dot-inf", lambda: b"config:\n  obsstack:loki: {burst_factor: .inf}\n", "is not a finite number"),
    ("too-big", lambda: b"config: {}\n" + b"#" * (2 * 1024 * 1024), "a stack file is at most"),
    ("not-yaml", lambda: b"config: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize(("make", "message"), [(m, msg) for _, m, msg in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_file_is_one_clear_error(tmp_path: Path, make: Callable[[], bytes], message: str) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_bytes(make())
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.load_file(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith("1 problem(s) in Pulumi.bad.yaml:")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("inf", "finite number"), ("nan", "finite number"), ("-inf", "finite number")],
    ids=["inf", "nan", "minus-inf"],
)
def test_non_finite_numbers_are_refused_where_a_number_is_expected(value: str, fragment: str) -> None:
    """`inf` unquoted is a YAML string; the model must not turn it into a float."""
    sections, _ = stack_config.read_stack_file(EXAMPLE_STACK)
    sections["loki"] = {**sections.get("loki", {}), "burst_factor": value}
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    assert "loki.burst_factor" in str(caught.value) and fragment in str(caught.value)


def test_dates_stay_the_strings_they_were_written_as(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  obsstack:when: 2026-01-01\n  obsstack:at: 2026-01-01T02:00:00Z\n")
    sections, _ = stack_config.read_stack_file(path)
    assert sections == {"when": "2026-01-01", "at": "2026-01-01T02:00:00Z"}


def test_the_example_reads_as_before() -> None:
    import yaml

    raw = yaml.safe_load(EXAMPLE)["config"]
    sections, _secure = stack_config.read_stack_file(EXAMPLE_STACK)
    assert sections == {k.split(":", 1)[1]: v for k, v in raw.items() if not (isinstance(v, dict) and "secure" in v)}
    assert stack_config.load_file(EXAMPLE_STACK).cluster
