"""Pins that survive point releases: the Debian revision is left open, real apt takes the newest
revision of the pinned upstream version as its candidate, and the packages step installs it
after the revision it was configured with has left the archive."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from components.monitoring import scripts, services
from components.render import files_for
from tests.unit.test_monitoring_scripts import fake_host, madison, rooted, run_script

DEBIAN_INDEX = "http://deb.debian.org/debian bookworm/main amd64 Packages"


@pytest.mark.parametrize(
    ("version", "pin"),
    [
        ("1.5.0-1+b6", "1.5.0-*"),
        ("2.42.0+ds-5+deb12u1", "2.42.0+ds-*"),
        ("2.28.1+dfsg-1", "2.28.1+dfsg-*"),
        ("1:2.3-4", "1:2.3-*"),
        ("11.3.1", "11.3.1"),
    ],
    ids=["binnmu", "point-release", "dfsg", "epoch", "no-revision"],
)
def test_pin_leaves_only_the_debian_revision_open(version: str, pin: str) -> None:
    assert scripts.pin_pattern(version) == pin


def _apt_root(tmp_path: Path, versions: tuple[str, ...]) -> list[str]:
    """A file: repository with ``versions`` of obsstack-dummy, our preferences file, and the apt
    options that make apt use only them (no root, no system lists)."""
    repo, prefs = tmp_path / "repo", tmp_path / "preferences.d"
    for d in (repo, prefs, tmp_path / "lists/partial", tmp_path / "cache/archives/partial"):
        d.mkdir(parents=True)
    digest = hashlib.sha256(b"x").hexdigest()
    (repo / "Packages").write_text(
        "".join(
            f"Package: obsstack-dummy\nVersion: {v}\nArchitecture: all\nMaintainer: t <t@example.net>\n"
            f"Filename: ./dummy_{v}.deb\nSize: 1\nSHA256: {digest}\nDescription: dummy\n\n"
            for v in versions
        )
    )
    packages = (repo / "Packages").read_bytes()
    (repo / "Release").write_text(f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    (tmp_path / "sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    (prefs / "obsstack-pins").write_text(scripts.preferences({"obsstack-dummy": "1.5.0-1+b6"}) + "\n")
    return [
        f"-oDir::Etc::SourceList={tmp_path}/sources.list",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::Etc::PreferencesParts={prefs}",
        "-oDir::Etc::Preferences=/nonexistent",
        f"-oDir::State::Lists={tmp_path}/lists",
        f"-oDir::Cache={tmp_path}/cache",
        "-oDir::State::status=/dev/null",
        "-oDebug::NoLocking=1",
    ]


def test_real_apt_takes_the_newest_revision_of_the_pinned_upstream_version(tmp_path: Path) -> None:
    apt_get, apt_cache = shutil.which("apt-get"), shutil.which("apt-cache")
    assert apt_get and apt_cache, "apt-get and apt-cache are required by this test"
    options = _apt_root(tmp_path, ("1.5.0-1+b6", "1.5.0-1+b7", "1.6.0-1"))
    update = subprocess.run([apt_get, *options, "update", "-q"], capture_output=True, text=True, check=False)
    assert update.returncode == 0, update.stderr
    policy = subprocess.run(
        [apt_cache, *options, "policy", "obsstack-dummy"], capture_output=True, text=True, check=True
    )
    assert "Candidate: 1.5.0-1+b7" in policy.stdout, policy.stdout  # not 1.6.0-1, though newer

    # The packages step's own candidate() against real madison output (wrapped with the options).
    wrapper = tmp_path / "bin/apt-cache"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {apt_cache} {" ".join(options)} "$@"\n')
    wrapper.chmod(0o755)
    functions = scripts.packages_script({}).split("refresh_if_needed() {")[0]
    probe = subprocess.run(
        ["bash", "-c", f"{functions}\ncandidate obsstack-dummy '1.5.0-*'"],
        env={"PATH": f"{wrapper.parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.stdout.strip() == "1.5.0-1+b7", probe.stderr


def test_a_revision_gone_from_the_archive_still_installs(tmp_path: Path) -> None:
    """The configured 1.5.0-1+b6 was replaced by a point release: the newest 1.5.0 revision is
    installed, never the newer upstream version the archive also has."""
    root, log, env = fake_host(tmp_path, **{"apt-cache": madison("1.6.0-1", "1.5.0-1+b7", index=DEBIAN_INDEX)})
    done = run_script(rooted(scripts.packages_script({"prometheus-node-exporter": "1.5.0-1+b6"}), root), env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "apt-get update -q" not in calls, "a matching revision is listed: no refresh needed"
    (install,) = [c for c in calls if c.startswith("apt-get install")]
    assert install.endswith("prometheus-node-exporter=1.5.0-1+b7")
    prefs = (root / scripts.PREFERENCES.lstrip("/")).read_text()
    assert "Package: prometheus-node-exporter\nPin: version 1.5.0-*\nPin-Priority: 1001" in prefs


def test_an_installed_older_revision_is_at_its_pin(tmp_path: Path) -> None:
    root, log, env = fake_host(tmp_path, **{"apt-cache": madison("1.5.0-1+b7", index=DEBIAN_INDEX)})
    state = Path(env["STATE"])
    (state / "installed-prometheus-node-exporter").write_text("1.5.0-1+b6")
    done = run_script(rooted(scripts.packages_script({"prometheus-node-exporter": "1.5.0-1+b6"}), root), env)
    assert done.returncode == 0, done.stderr
    assert "already at their pinned versions" in done.stdout
    assert not [c for c in log.read_text().splitlines() if c.startswith("apt-get install")]


def test_no_matching_version_names_the_setting(tmp_path: Path) -> None:
    root, _, env = fake_host(tmp_path, **{"apt-cache": madison("1.6.0-1", index=DEBIAN_INDEX, updated=("1.6.0-1",))})
    done = run_script(rooted(scripts.packages_script({"prometheus-node-exporter": "1.5.0-1+b6"}), root), env)
    assert done.returncode == 1
    assert "no prometheus-node-exporter matching 1.5.0-* in the package lists (monitoring.versions)" in done.stderr


@pytest.mark.parametrize(
    ("version_id", "installed"),
    [("12", "prometheus-node-exporter=1.5.0-1+b6"), ("13", "prometheus-node-exporter=1.9.0-1+b4")],
    ids=["pve8-bookworm", "pve9-trixie"],
)
def test_agents_pin_the_versions_of_the_hosts_debian_release(
    tmp_path: Path, example_config, example_inventory, version_id: str, installed: str
) -> None:
    """PVE 8 and PBS 3 run Debian 12, PVE 9 and PBS 4 Debian 13: the packages step reads the
    host's /etc/os-release and pins that release's versions."""
    node = next(a for a in example_inventory.managed_hosts if a.kind == "pve_node")
    files, secrets = files_for(example_config, example_inventory, node.name)
    specs = services.specs(example_config, str(node.address), files, secrets, only=services.AGENT_SERVICES)
    node_exporter = [s for s in specs if s.name == "node_exporter"]
    packages = services.packages(example_config, node_exporter)
    releases = services.release_packages(example_config, node_exporter)
    listed = madison("1.9.0-1+b4", "1.5.0-1+b6", index=DEBIAN_INDEX)
    root, log, env = fake_host(tmp_path, **{"apt-cache": listed})
    (root / "etc/os-release").write_text(f'VERSION_ID="{version_id}"\n')
    done = run_script(rooted(scripts.packages_script(packages, None, None, None, releases), root), env)
    assert done.returncode == 0, done.stderr
    (install,) = [c for c in log.read_text().splitlines() if c.startswith("apt-get install")]
    assert install.endswith(installed)


def test_an_unknown_debian_release_is_refused(tmp_path: Path) -> None:
    root, _, env = fake_host(tmp_path, **{"apt-cache": madison("1.5.0-1+b6", index=DEBIAN_INDEX)})
    (root / "etc/os-release").write_text('VERSION_ID="11"\n')
    script = scripts.packages_script({"prometheus-node-exporter": "1.5.0-1+b6"}, releases={"13": {}})
    done = run_script(rooted(script, root), env)
    assert done.returncode == 1
    assert "Debian 11 has no pinned versions (supported: 12, 13)" in done.stderr


def test_holds_of_earlier_runs_are_lifted_and_unknown_packages_are_not_touched(tmp_path: Path) -> None:
    """apt-mark exits non-zero for a package the lists do not know yet (a first install from a
    repository just added), so only the packages it reports held are unheld."""
    listed = madison("1.5.0-1+b6", "11.3.1", index=DEBIAN_INDEX)
    held = 'echo "apt-mark $*" >>"$LOG"; [ "$1" = showhold ] && echo prometheus-node-exporter; :'
    root, log, env = fake_host(tmp_path, **{"apt-cache": listed, "apt-mark": held})
    packages = {"prometheus-node-exporter": "1.5.0-1+b6", "grafana": "11.3.1"}
    done = run_script(rooted(scripts.packages_script(packages), root), env)
    assert done.returncode == 0, done.stderr
    marks = [c for c in log.read_text().splitlines() if c.startswith("apt-mark")]
    assert marks == ["apt-mark showhold", "apt-mark unhold prometheus-node-exporter"]
