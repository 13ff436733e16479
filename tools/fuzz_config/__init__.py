"""Seeded mutations of a stack file through the plan's own loading path, and the real validators
run over what the accepted ones render.

Every mutation is written as a stack file and read back with the plan's loader
(config.read_stack_file + config.validate), so YAML quoting, tags and the loader's limits are
exercised too. An accepted config is rendered in-process (components.render.shipment, the files
the plan ships) and its files are checked in batches: one `promtool check config` (which also
checks the rule files it names), one `amtool check-config`, one `blackbox_exporter
--config.check` and one `systemd-analyze verify` per distinct file, so thousands of mutations
cost a few validator runs, not thousands.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
import shutil
import subprocess
import tempfile
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import HostFile, shipment

# Values a user might write by mistake, or an attacker on purpose.
SCALARS: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    65536,
    2**63,
    1.5,
    float("inf"),
    float("nan"),
    "",
    " ",
    "x",
    "15s",
    "0s",
    "24h",
    "1m",
    "pve1",
    "10.0.0.1",
    "10.0.10.256",
    "0.0.0.0",  # noqa: S104 - a value to refuse, not a bind address
    "critical",
    "slack-ops",
    "snapshot",
    "*-02-30 02:00",
    "mon-1",
    "https://user:pass@example.net/x",
    "a\nb",
    "a\r\nExecStart=/bin/sh",
    "x; rm -rf /",
    "$(id)",
    "{{ .Secret }}",
    "#comment",
    "é",
    "2026-01-01",
    "y" * 300,
)
# Suffixes for a string field: accepted, they must not change the structure of any rendered file.
SUFFIXES = (" x", "#x", "'x", '"x', "{{x}}", "%x", "$x", "\\x", ";x", "é", ":x", " = x", "]x", "[x]", "-2", "x")


@dataclass(frozen=True)
class Mutation:
    description: str
    sections: dict[str, Any]
    # One string field got a suffix: the rendered files keep their structure. Not said of a value
    # another field refers to (the gateway a probe targets, a depends_on name): editing one end
    # of a reference legitimately reshapes the dependency graph and the rules derived from it.
    string_only: bool
    raw: bytes | None = None  # the stack file's bytes, when the mutation is of the text itself


def stack_text(sections: dict[str, Any]) -> str:
    document = {"config": {f"{stack_config.NAMESPACE}:{k}": v for k, v in sections.items()}}
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


# Edits of the file's text: what a bad paste, an editor or another tool does to YAML.
TEXT_EDITS = (
    ("tag !!binary", lambda line: line.replace(": ", ": !!binary ", 1)),
    ("tag !!set", lambda line: line.replace(": ", ": !!set ", 1)),
    ("timestamp", lambda line: line.replace(": ", ": 2026-01-01 10:00:00 #", 1)),
    ("anchor and alias", lambda line: line.replace(": ", ": &a ", 1) + "\n  obsstack:extra: *a"),
    ("duplicate line", lambda line: line + "\n" + line),
    ("tab indent", lambda line: "\t" + line.lstrip()),
    ("unclosed flow", lambda line: line.replace(": ", ": [", 1)),
    ("stray byte", lambda line: line + "\udcff"),
    ("nul byte", lambda line: line + "\x00"),
    ("deep nesting", lambda line: line.replace(": ", ": " + "[" * 200, 1)),
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


def parent_of(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


def mutations(example: dict[str, Any], seed: int, count: int) -> Iterator[Mutation]:
    """``count`` reproducible mutations of ``example``: a third of them one string field's suffix."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test input, not a secret
    every = paths(example)
    strings = [p for p in every if isinstance(parent_of(example, p)[p[-1]], str)]
    lines = stack_text(example).splitlines()
    for n in range(count):
        sections = copy.deepcopy(example)
        if n % 6 == 1:
            yield _text_mutation(rng, lines, sections)
            continue
        if n % 3 == 0:
            yield suffix_mutation(example, rng.choice(strings), rng.choice(SUFFIXES))
            continue
        done = []
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(every)
            try:
                parent = parent_of(sections, path)
                parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            done.append(_apply(rng, parent, path))
        yield Mutation("; ".join(done) or "none", sections, False)


def suffix_mutation(example: dict[str, Any], path: tuple[Any, ...], suffix: str) -> Mutation:
    sections = copy.deepcopy(example)
    original = parent_of(sections, path)[path[-1]]
    parent_of(sections, path)[path[-1]] = original + suffix
    reshapes = bool(_hosts(original) & _graph_addresses(example))
    return Mutation(f"{_dotted(path)} += {suffix!r}", sections, not reshapes)


def _graph_addresses(example: dict[str, Any]) -> set[str]:
    """The addresses the dependency graph looks up an owner for: the monitoring hosts' gateways and
    resolvers (components/inventory.py ``dependency_edges``). Renaming either end of such a reference
    changes which assets are upstreams, and so the rules and inhibitions derived from them."""
    monitoring = example.get("monitoring", {})
    gateways = {h.get("gateway") for h in monitoring.get("hosts", []) if isinstance(h, dict)}
    resolvers = set(monitoring.get("vm", {}).get("dns", []))
    return {str(a) for a in gateways | resolvers if a}


def _hosts(value: str) -> set[str]:
    """``value`` and the host it names as a URL or ``host:port`` (how probes give their targets)."""
    host = urllib.parse.urlsplit(value).hostname if "://" in value else value.rpartition(":")[0]
    return {value, host} if host else {value}


def _text_mutation(rng: random.Random, lines: list[str], sections: dict[str, Any]) -> Mutation:
    index = rng.randrange(1, len(lines))
    name, edit = rng.choice(TEXT_EDITS)
    edited = [*lines[:index], edit(lines[index]), *lines[index + 1 :]]
    text = "\n".join(edited) + "\n"
    raw = text.encode("utf-8", errors="surrogateescape")
    if rng.random() < 0.1:
        raw = text.encode("utf-16", errors="surrogatepass")
    return Mutation(f"text line {index}: {name}", sections, False, raw)


def _apply(rng: random.Random, parent: Any, path: tuple[Any, ...]) -> str:
    key = path[-1]
    operation = rng.choice(("replace", "replace", "delete", "add-key", "duplicate", "nest"))
    if operation == "delete":
        del parent[key]
    elif operation == "add-key" and isinstance(parent, dict):
        parent[rng.choice(("extra", "Name", "name ", "schedule"))] = rng.choice(SCALARS)
    elif operation == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    elif operation == "nest":
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}
    else:
        operation = "replace"
        parent[key] = rng.choice(SCALARS)
    return f"{operation} {_dotted(path)}"


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@dataclass
class Outcome:
    """What happened to one mutation: a clean ConfigError, accepted (with its files) or a crash."""

    mutation: Mutation
    error: str | None = None
    crash: str | None = None
    files: tuple[HostFile, ...] = ()


def load_and_render(mutation: Mutation, workdir: Path) -> Outcome:
    """The plan's loading path (a stack file read back), then the plan's renderers."""
    stack_file = workdir / "Pulumi.fuzz.yaml"
    stack_file.write_bytes(mutation.raw if mutation.raw is not None else stack_text(mutation.sections).encode())
    try:
        sections, _ = stack_config.read_stack_file(stack_file)
        config = stack_config.validate(sections, source=stack_file.name)
        inventory = stack_inventory.build(config)
        files = shipment(config, inventory).files
        secrets = shipment(config, inventory).secrets
    except stack_config.ConfigError as err:
        return Outcome(mutation, error=str(err))
    except Exception:  # noqa: BLE001 - what the fuzzer is for
        return Outcome(mutation, crash=traceback.format_exc(limit=8))
    placeholders = tuple(HostFile(s.host, s.path, "placeholder\n") for s in secrets)
    return Outcome(mutation, files=tuple(f for f in files if _validated(f.path)) + placeholders)


def _validated(path: str) -> bool:
    return path.startswith("/etc/prometheus/") or path.startswith("/etc/systemd/system/")


# ---- validators, each run once over a batch --------------------------------------------------


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} not found: apt-get install prometheus prometheus-alertmanager prometheus-blackbox-exporter systemd"
        )
    return path


@dataclass
class Verdict:
    checked: dict[str, int] = field(default_factory=dict)  # validator -> distinct files checked
    rejected: list[str] = field(default_factory=list)  # "<validator> <file>: <output>"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _write_tree(root: Path, files: Iterable[HostFile]) -> None:
    for f in files:
        target = root / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)


def validate_batch(outcomes: list[Outcome], workdir: Path) -> Verdict:
    """Run the real validators once per distinct rendered file set of the accepted outcomes."""
    verdict = Verdict()
    trees: dict[str, Path] = {}
    for outcome in outcomes:
        by_host: dict[str, list[HostFile]] = {}
        for f in outcome.files:
            by_host.setdefault(f.host, []).append(f)
        for host_files in by_host.values():
            key = _digest(*sorted(f"{f.path}\0{f.content}" for f in host_files))
            if key not in trees:
                trees[key] = workdir / "trees" / key
                _write_tree(trees[key], host_files)
    roots = list(trees.values())
    _check_each(
        verdict, "promtool", [_binary("promtool"), "check", "config"], _found(roots, "etc/prometheus/prometheus.yml")
    )
    _check_each(
        verdict, "amtool", [_binary("amtool"), "check-config"], _found(roots, "etc/prometheus/alertmanager.yml")
    )
    blackbox = _unique(_found(roots, "etc/prometheus/blackbox.yml"))
    verdict.checked["blackbox_exporter"] = len(blackbox)
    for path in blackbox:
        run = subprocess.run(
            [_binary("prometheus-blackbox-exporter"), "--config.check", f"--config.file={path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            verdict.rejected.append(f"blackbox_exporter {path}: {run.stderr.strip()[-500:]}")
    _verify_units(verdict, roots, workdir)
    return verdict


def _found(roots: list[Path], relative: str) -> list[Path]:
    return [root / relative for root in roots if (root / relative).is_file()]


def _unique(paths: list[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(_digest(path.read_text()), path)
    return list(seen.values())


def _check_each(verdict: Verdict, name: str, command: list[str], paths: list[Path]) -> None:
    """One invocation over every file; on failure, once per file to name the ones refused."""
    verdict.checked[name] = len(paths)
    if not paths:
        return
    if subprocess.run([*command, *map(str, paths)], capture_output=True, check=False).returncode == 0:
        return
    for path in paths:
        run = subprocess.run([*command, path.name], cwd=path.parent, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            verdict.rejected.append(f"{name} {path}: {(run.stdout + run.stderr).strip()[-500:]}")


SYSTEM_UNITS = Path("/usr/lib/systemd/system")
STAND_IN = "[Unit]\nDescription=stand-in for {unit}\nDefaultDependencies=no\n\n[Service]\nExecStart=/usr/bin/true\n"


def _verify_units(verdict: Verdict, roots: list[Path], workdir: Path) -> None:
    """systemd-analyze verify each distinct set of a host's units and drop-ins, in a private root.

    The root gets this machine's targets (sysinit.target, timers.target, ...), a stand-in unit for
    each drop-in (the packages' units are not here) and a stub for every Exec*= binary, so what is
    left to report is the rendered text itself. Warnings keep exit status 0, so stderr counts too.
    """
    analyze = _binary("systemd-analyze")
    variants: dict[str, Path] = {}
    for root in roots:
        units = root / "etc/systemd/system"
        if units.is_dir():
            texts = sorted(f"{p.relative_to(units)}\0{p.read_text()}" for p in units.rglob("*") if p.is_file())
            variants.setdefault(_digest(*texts), units)
    verdict.checked["systemd-analyze"] = len(variants)
    for key, source in sorted(variants.items()):
        root = workdir / "units" / key
        shutil.copytree(source, root / "etc/systemd/system")
        shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), ignore=_not_targets)
        names = _prepare(root, root / "etc/systemd/system")
        run = subprocess.run(
            [analyze, "verify", "--man=no", f"--root={root}", *names], capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or run.stderr.strip():
            verdict.rejected.append(f"systemd-analyze {source}: {run.stderr.strip()[-800:]}")


def _not_targets(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith(".target")]


def _prepare(root: Path, units: Path) -> list[str]:
    """Stand-ins for drop-ins' units, stubs for binaries; the unit names to verify."""
    names = sorted(p.name for p in units.iterdir() if p.is_file())
    for dropin_dir in sorted(p for p in units.iterdir() if p.is_dir() and p.name.endswith(".d")):
        unit = dropin_dir.name.removesuffix(".d")
        if not (units / unit).exists():
            (units / unit).write_text(STAND_IN.format(unit=unit))
            names.append(unit)
    for path in units.rglob("*"):
        for line in path.read_text().splitlines() if path.is_file() else []:
            match = re.match(r"^Exec\w+=[-@:+!]*(/\S+)", line)
            if match:
                stub = root / match.group(1).lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
    stub = root / "usr/bin/true"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    return names


# ---- structure ----------------------------------------------------------------------------------


def shape(path: str, content: str) -> Any:
    """What a string value must not change: for YAML and JSON the document's tree of keys and list
    lengths (a long scalar may wrap onto two lines: same structure); for every other file its line
    count and section headers ([Unit], [Service], INI sections)."""
    if path.endswith((".yml", ".yaml", ".json")):
        try:
            return _tree(yaml.safe_load(content))
        except yaml.YAMLError as err:
            return f"unparsable: {err}"
    lines = content.splitlines()
    return len(lines), [line for line in lines if re.fullmatch(r"\s*\[[^\]]+\]\s*", line)]


def _tree(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_tree(v) for v in node]
    return type(node).__name__


def structure_changes(baseline: Iterable[HostFile], files: Iterable[HostFile]) -> list[str]:
    """Files present in both renders whose shape differs."""
    before = {(f.host, f.path): shape(f.path, f.content) for f in baseline}
    return [
        f"{f.host}:{f.path}"
        for f in files
        if (f.host, f.path) in before and shape(f.path, f.content) != before[(f.host, f.path)]
    ]


@dataclass
class Summary:
    mutations: int = 0
    clean_errors: int = 0
    accepted: int = 0
    crashes: list[str] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)

    def lines(self, seed: int) -> list[str]:
        checked = ", ".join(f"{name} {n}" for name, n in self.verdict.checked.items())
        return [
            f"{self.mutations} mutations (seed {seed}): {self.clean_errors} clean errors, "
            f"{self.accepted} accepted, {len(self.crashes)} tracebacks",
            f"rendered files checked (distinct): {checked}; rejected by a validator: {len(self.verdict.rejected)}",
            f"string edits that changed a rendered file's structure: {len(self.structure)}",
        ]


def run(example: dict[str, Any], seed: int, count: int, batch: int = 500) -> Summary:
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="obsstack-fuzz-") as tmp:
        workdir = Path(tmp)
        baseline = load_and_render(Mutation("none", copy.deepcopy(example), False), workdir)
        accepted: list[Outcome] = []
        for mutation in mutations(example, seed, count):
            outcome = load_and_render(mutation, workdir)
            summary.mutations += 1
            if outcome.crash:
                summary.crashes.append(f"{mutation.description}\n{outcome.crash}")
            elif outcome.error:
                summary.clean_errors += 1
                if "Traceback" in outcome.error:
                    summary.crashes.append(f"{mutation.description}: a traceback inside the message")
            else:
                summary.accepted += 1
                accepted.append(outcome)
                if mutation.string_only:
                    summary.structure += [
                        f"{mutation.description}: {f}" for f in structure_changes(baseline.files, outcome.files)
                    ]
            if len(accepted) >= batch:
                _merge(summary.verdict, validate_batch(accepted, workdir / str(summary.mutations)))
                accepted = []
        if accepted:
            _merge(summary.verdict, validate_batch(accepted, workdir / "last"))
    return summary


def _merge(total: Verdict, part: Verdict) -> None:
    for name, n in part.checked.items():
        total.checked[name] = total.checked.get(name, 0) + n
    total.rejected += part.rejected
