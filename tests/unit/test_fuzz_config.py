"""Accepted configs render files the real validators accept, and string edits keep every rendered
file's structure: hypothesis mutations (derandomized; thousands in CI) and the seeded fuzz run,
each rendered in-process and validated in batches (tools/fuzz_config)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.render import HostFile
from tests.conftest import load_sections
from tools.fuzz_config import (
    SCALARS,
    SUFFIXES,
    Mutation,
    load_and_render,
    parent_of,
    paths,
    run,
    structure_changes,
    suffix_mutation,
    validate_batch,
)

EXAMPLE = load_sections()
ALL_PATHS = paths(EXAMPLE)
STRING_PATHS = [p for p in ALL_PATHS if isinstance(parent_of(EXAMPLE, p)[p[-1]], str)]
EXAMPLES = 2000 if os.environ.get("CI") else 300

values = st.one_of(
    st.sampled_from(SCALARS),
    st.text(max_size=12),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.lists(st.sampled_from(SCALARS), max_size=2),
)


@st.composite
def mutated(draw: st.DrawFn) -> Mutation:
    sections = copy.deepcopy(EXAMPLE)
    if draw(st.booleans()):
        path = draw(st.sampled_from(STRING_PATHS))
        suffix = draw(st.sampled_from(SUFFIXES) | st.text(min_size=1, max_size=4))
        return suffix_mutation(EXAMPLE, path, suffix)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = parent_of(sections, path)
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        if draw(st.booleans()):
            parent[path[-1]] = draw(values)
        else:
            del parent[path[-1]]
    return Mutation("mixed", sections, False)


def test_accepted_mutations_render_files_validators_accept_and_keep_their_structure(tmp_path: Path) -> None:
    baseline = load_and_render(Mutation("none", copy.deepcopy(EXAMPLE), False), tmp_path)
    accepted = []
    crashes: list[str] = []
    changed: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated())
    def collect(mutation: Mutation) -> None:
        outcome = load_and_render(mutation, tmp_path)
        if outcome.crash:
            crashes.append(outcome.crash)
        elif outcome.error is None:
            accepted.append(outcome)
            if mutation.string_only:
                changed.extend(f"{mutation.description}: {f}" for f in structure_changes(baseline.files, outcome.files))

    collect()
    assert not crashes, crashes[0]
    assert not changed, changed[:5]
    assert len(accepted) > EXAMPLES // 50, "too few accepted mutations to prove anything"
    verdict = validate_batch(accepted, tmp_path / "validated")
    print(f"{len(accepted)} accepted of {EXAMPLES}; distinct files checked: {verdict.checked}")
    assert verdict.checked["promtool"] and verdict.checked["amtool"] and verdict.checked["systemd-analyze"]
    assert not verdict.rejected, verdict.rejected[:5]


def test_only_the_dependency_graphs_references_may_reshape_rendered_files(tmp_path: Path) -> None:
    """Found by CI's 2,000 examples: the router's probe of the monitoring gateway, edited, leaves the
    gateway unowned, so the router is no longer an upstream; a real change of meaning, not injection.
    The exemption covers only the gateway and resolver addresses, at both ends of the reference."""
    gateway = EXAMPLE["monitoring"]["hosts"][0]["gateway"]
    resolvers = set(EXAMPLE["monitoring"]["vm"]["dns"])
    exempt = {p: parent_of(EXAMPLE, p)[p[-1]] for p in STRING_PATHS if not suffix_mutation(EXAMPLE, p, "x").string_only}
    assert ("monitoring", "hosts", 0, "gateway") in exempt and ("monitoring", "vm", "dns", 0) in exempt
    assert {v.rpartition(":")[0] or v for v in exempt.values()} == {gateway} | resolvers
    gateway_probe = next(p for p, v in exempt.items() if p[-1] == "target" and v == gateway)
    baseline = load_and_render(Mutation("none", copy.deepcopy(EXAMPLE), False), tmp_path)
    edited = load_and_render(suffix_mutation(EXAMPLE, gateway_probe, "x"), tmp_path)
    assert edited.error is None and structure_changes(baseline.files, edited.files)


def test_seeded_fuzz_run_of_2000_mutations_finds_nothing(capsys: Any) -> None:
    summary = run(EXAMPLE, seed=18, count=2000)
    print("\n".join(summary.lines(18)))
    assert summary.mutations == 2000 and summary.accepted > 0
    assert not summary.crashes, summary.crashes[:3]
    assert not summary.verdict.rejected, summary.verdict.rejected[:3]
    assert not summary.structure, summary.structure[:3]


def test_the_validators_can_fail(tmp_path: Path) -> None:
    """A rendered file broken by hand is refused: the batch checks are not vacuous."""
    outcome = load_and_render(Mutation("none", copy.deepcopy(EXAMPLE), False), tmp_path)
    broken = [
        type(f)(f.host, f.path, f.content.replace("scrape_interval:", "scrape_intervall:", 1))
        if f.path == "/etc/prometheus/prometheus.yml"
        else type(f)(f.host, f.path, f.content + "\nOnCalendar=never-ever\n")
        if f.path.endswith(".timer")
        else f
        for f in outcome.files
    ]
    outcome.files = tuple(broken)
    verdict = validate_batch([outcome], tmp_path / "validated")
    assert any(r.startswith("promtool") for r in verdict.rejected), verdict.rejected
    assert any(r.startswith("systemd-analyze") for r in verdict.rejected), verdict.rejected


def test_the_structure_check_can_fail() -> None:
    """A value that adds a line or a section, or a YAML key, is a structure change."""
    before = [
        HostFile("h", "/etc/grafana/grafana.ini", "[security]\nadmin_user = admin\n"),
        HostFile("h", "/etc/prometheus/alertmanager.yml", "route:\n  receiver: a\n"),
    ]
    after = [
        HostFile("h", "/etc/grafana/grafana.ini", "[security]\nadmin_user = admin\n[auth]\nx = y\n"),
        HostFile("h", "/etc/prometheus/alertmanager.yml", "route:\n  receiver: a\n  continue: true\n"),
    ]
    assert structure_changes(before, after) == ["h:/etc/grafana/grafana.ini", "h:/etc/prometheus/alertmanager.yml"]
    assert structure_changes(before, before) == []
