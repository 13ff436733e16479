"""Property: any mutation of the example config is either valid or the clean ConfigError."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import config as stack_config
from tests.conftest import load_sections

EXAMPLE = load_sections()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["15s", "0s", "pve1", "10.0.0.1", "critical", "slack-ops", "24h", "1m", "snapshot"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


ALL_PATHS = paths(EXAMPLE)


def parent_of(root: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = root
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    sections = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = parent_of(sections, path)
            key = path[-1]
            parent[key]  # the path may be gone after an earlier mutation
        except (KeyError, IndexError, TypeError):
            continue
        operation = draw(st.sampled_from(["replace", "delete", "add-key", "duplicate"]))
        if operation == "replace":
            parent[key] = draw(values)
        elif operation == "delete":
            del parent[key]
        elif operation == "add-key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return sections


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_valid_config_or_clean_error(sections: dict[str, Any]) -> None:
    try:
        stack_config.validate(sections)
    except stack_config.ConfigError as err:
        assert err.problems, "a ConfigError must name at least one problem"
        for problem in err.problems:
            assert problem.path.startswith("obsstack"), problem
            assert problem.message and "Traceback" not in problem.message
