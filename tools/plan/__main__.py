"""Offline plan: run the real program under Pulumi's mock engine and show what `pulumi up` would do.

    python -m tools.plan --stack prod [--out build/plan] [--secrets FILE] [--quiet]

Exit codes: 0 ok, 2 invalid config (one message listing every problem) or an --out this tool may
not replace, 1 anything else.
Writes plan.json, plan.md, outputs.json and hosts/<host>/<path> for every file shipped to a host,
and the marker file .obsstack-plan: --out is replaced on every run only when it is new, empty or
an earlier plan of this tool (the marker; or, written before the marker, only our files and our
plan.json keys), never another directory (say one holding a Terraform plan.json) or a file.
Secret values never reach the output: secret config becomes clearly-marked placeholders (or the
values of --secrets, for tests) that stay secret Outputs and are printed as ``[secret]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components import prune
from components.render import host_files, secret_files
from tools.plan import engine, outdir

EXIT_OK, EXIT_ERROR, EXIT_INVALID = 0, 1, 2


class PlanOutError(Exception):
    """The output directory is something else than an earlier plan."""


KEY_INPUTS = 4
MARKER = ".obsstack-plan"
MARKER_TEXT = "Written by `python -m tools.plan`; the next run replaces this directory entirely.\n"
PLAN_KEYS = {"stack", "resources", "outputs"}  # plan.json's top level (a Terraform one has format_version)
CHART_CACHE = engine.ROOT / "build" / "cache"


def earlier_plan(out: Path) -> dict[str, Any] | None:
    """The plan.json of the plan already in ``out`` (``{}`` if unreadable), None if ``out`` is new or
    empty. Raises PlanOutError for anything this tool did not write, which it must not replace."""
    fix = "pass a new or empty directory, or the directory of an earlier plan"
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        kind = "a symbolic link" if out.is_symlink() else "a file"
        raise PlanOutError(f"--out {out} is {kind}, not a directory: {fix}")
    try:
        entries = {p.name for p in out.iterdir()} if out.exists() else set()
    except OSError as err:
        raise PlanOutError(f"--out {out} cannot be read ({err.strerror}): {fix}") from None
    if not entries:
        return None
    try:
        plan = json.loads((out / "plan.json").read_text())
    except (OSError, ValueError):
        plan = None
    ours = isinstance(plan, dict) and set(plan) == PLAN_KEYS
    written = {MARKER, "plan.json", "plan.md", "outputs.json", "hosts", prune.CHART_NAME}
    if (out / MARKER).is_file() or (ours and entries <= written):  # the latter: plans from before the marker
        return plan if ours else {}
    raise PlanOutError(
        f"--out {out} is not empty and is not a plan written by this tool (no {MARKER} in it): "
        f"refusing to replace it; {fix}"
    )


def dropped_protected(previous: Mapping[str, Any], result: engine.PlanResult) -> list[str]:
    """Protected or retained resources of the earlier plan that this one neither has nor aliases:
    what `pulumi up` would refuse to delete (protect) or forget without deleting (retainOnDelete)."""
    kept = {(r.type, r.name) for r in result.resources}
    for r in result.resources:
        for alias in r.options.get("aliases", []):
            if "urn" in alias:  # urn:pulumi:<stack>::<project>::<parent types$type>::<name>
                parts = alias["urn"].split("::")
                kept.add((parts[2].split("$")[-1], parts[3]))
            else:
                spec = alias.get("spec", {})
                kept.add((spec.get("type") or r.type, spec.get("name") or r.name))
    return sorted(
        r["name"]
        for r in previous.get("resources", [])
        if ((r.get("options") or {}).get("protect") or (r.get("options") or {}).get("retainOnDelete"))
        and (r.get("type"), r.get("name")) not in kept
    )


def secret_values(config: stack_config.StackConfig, secrets_file: Path | None) -> dict[str, str]:
    given: Mapping[str, Any] = yaml.safe_load(secrets_file.read_text()) if secrets_file else {}
    return {key: str(given.get(key, f"offline-placeholder-{key}")) for key in config.secret_key_names()}


def _ordered(resources: list[engine.Recorded]) -> list[tuple[int, engine.Recorded]]:
    """Depth-first, children sorted by (type, name): a deterministic tree order."""
    by_parent: dict[str | None, list[engine.Recorded]] = {}
    for r in resources:
        by_parent.setdefault(r.parent, []).append(r)
    out: list[tuple[int, engine.Recorded]] = []

    def visit(parent: str | None, depth: int) -> None:
        for r in sorted(by_parent.get(parent, []), key=lambda r: (r.type, r.name)):
            out.append((depth, r))
            visit(r.name, depth + 1)

    visit(None, 0)
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 48 else text[:45] + "..."


def key_inputs(resource: engine.Recorded) -> str:
    scalars = [(k, v) for k, v in sorted(resource.inputs.items()) if not isinstance(v, (dict, list))]
    shown = [f"{k}={_short(v)}" for k, v in scalars if len(_short(v)) < 60][:KEY_INPUTS]
    return " ".join(shown)


def render_tree(result: engine.PlanResult) -> str:
    lines = []
    for depth, r in _ordered(result.resources):
        flags = "".join(
            f" [{flag}]"
            for flag, on in (("protect", r.options["protect"]), ("retain", r.options["retainOnDelete"]))
            if on
        )
        lines.append(f"{'  ' * depth}{r.type}  {r.name}{flags}  {key_inputs(r)}".rstrip())
    lines.append("")
    lines.append("Resources by type:")
    for type_, count in result.count_by_type().items():
        lines.append(f"  {count:4d}  {type_}")
    lines.append(f"  {len(result.resources):4d}  total")
    return "\n".join(lines)


def render_markdown(
    stack: str,
    result: engine.PlanResult,
    inventory: stack_inventory.Inventory,
    files: list[Any],
    dropped: list[str] | None = None,
) -> str:
    """The summary; ``dropped``: protected resources gone since the earlier plan (None: none compared)."""
    protected = [r for r in result.resources if r.options["protect"] or r.options["retainOnDelete"]]
    gone = []
    if dropped is not None:
        names = ", ".join(f"`{name}`" for name in dropped) or "none"
        why = (
            " (`pulumi up` refuses to delete a protected one and forgets a retained one, leaving it)" if dropped else ""
        )
        gone = [f"**Protected resources gone since the previous plan:** {names}{why}", ""]
    lines = [
        f"## obsstack plan: `{stack}`",
        "",
        f"**{len(result.resources)} resources** ({sum(1 for r in result.resources if r.custom)} custom), "
        f"{len(inventory.coverage)} registered scrape targets over {len(inventory.registered_assets)} assets, "
        f"{len(inventory.protected)} protected guests, {len(inventory.drill_targets)} restore-drill targets.",
        "",
        "| count | type |",
        "|---:|---|",
        *[f"| {n} | `{t}` |" for t, n in result.count_by_type().items()],
        "",
        "**Backups:** " + ", ".join(f"{g.name} ({g.vmid})" for g in inventory.protected),
        "",
        "**Protected from deletion:** " + (", ".join(sorted(f"`{r.name}`" for r in protected)) or "none"),
        "",
        *gone,
        "**Scrape jobs:** " + ", ".join(f"{j.name} ({len(j.targets)})" for j in inventory.scrape_jobs),
        "",
        "<details><summary>Files shipped to hosts</summary>",
        "",
        "| host | path | sha256 |",
        "|---|---|---|",
        *[
            f"| {f.host} | `{f.path}` | `{hashlib.sha256(f.content.encode()).hexdigest()[:12]}` |"
            for f in sorted(files, key=lambda f: (f.host, f.path))
        ],
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def prune_chart(config: stack_config.StackConfig, report: str) -> bytes:
    """The prune picture, drawn once per input (matplotlib takes a second to import and draw):
    ``report`` lists every simulated restore point the chart shows, prune.py draws it."""
    key = hashlib.sha256((report + Path(prune.__file__).read_text()).encode()).hexdigest()[:16]
    cached = CHART_CACHE / f"prune-{key}.png"
    if not cached.is_file():
        CHART_CACHE.mkdir(parents=True, exist_ok=True)
        drawing = cached.with_suffix(f".{os.getpid()}.png")
        prune.write_chart(config, drawing)
        drawing.replace(cached)  # atomic: a concurrent plan never copies half a picture
    return cached.read_bytes()


def write_plan(out: Path, stack: str, config: stack_config.StackConfig, result: engine.PlanResult) -> None:
    inventory = stack_inventory.build(config)
    files = host_files(config, inventory)
    previous = earlier_plan(out)
    dropped = dropped_protected(previous, result) if previous and previous.get("stack") == stack else None
    plan = {
        "stack": stack,
        "resources": [r.as_plan() for _, r in _ordered(result.resources)],
        "outputs": result.outputs,
    }
    prune_report = prune.plan_report(config)
    texts = {
        MARKER: MARKER_TEXT,
        "plan.json": json.dumps(plan, indent=2, sort_keys=True) + "\n",
        "outputs.json": json.dumps(result.outputs, indent=2, sort_keys=True) + "\n",
        "plan.md": render_markdown(stack, result, inventory, files, dropped) + prune_report,
    }
    texts.update({f"hosts/{f.host}/{f.path.lstrip('/')}": f.content for f in files})
    for s in secret_files(config, inventory):
        placeholder = f"{engine.SECRET} ({s.source}, mode {s.mode}, owner {s.owner})\n"
        texts[f"hosts/{s.host}/{s.path.lstrip('/')}"] = placeholder
    wanted = {name: text.encode() for name, text in texts.items()}
    wanted[prune.CHART_NAME] = prune_chart(config, prune_report)
    try:
        outdir.sync(out, wanted)
    except OSError as err:
        raise PlanOutError(f"--out {out} cannot be written ({err.strerror}): pass a directory path") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=Path("build/plan"))
    parser.add_argument("--secrets", type=Path, help="YAML of secret values to use instead of placeholders")
    parser.add_argument("--quiet", action="store_true", help="do not print the resource tree")
    args = parser.parse_args(argv)
    stack_file = args.stack_file or engine.ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        if not stack_file.exists():
            print(f"error: {stack_file} not found: create it or pass --stack NAME", file=sys.stderr)
            return EXIT_INVALID
        sections, _ = stack_config.read_stack_file(stack_file)
        # The stack the program runs under (its names derive from it), not the file's name: the
        # files written under hosts/ are the ones the program ships.
        config = stack_config.validate(sections, source=stack_file.name, stack=args.stack)
        earlier_plan(args.out)  # refuse a wrong --out before the run, not after it
        secrets = secret_values(config, args.secrets)
        result = engine.run(args.stack, sections, secrets)
        write_plan(args.out, args.stack, config, result)
    except stack_config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except PlanOutError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except Exception:  # noqa: BLE001 - anything else is a bug: show it, exit 1
        traceback.print_exc()
        return EXIT_ERROR
    if not args.quiet:
        print(render_tree(result))
        print("\n" + "\n".join(prune.summary_lines(config)))
    print(f"\nplan written to {args.out}/ (plan.json, plan.md, outputs.json, hosts/)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
