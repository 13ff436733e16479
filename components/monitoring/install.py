"""Declares, under a component, the pulumi-command resources that install services on one host:
packages -> layout -> staged files (CopyToRemote) and secrets (stdin) -> one validate/swap/
reload step per service. Used by MonitoringHost and HostAgents; the scripts come from
scripts.py, so the host test runs the very same commands.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import remote

from components.config import StackConfig
from components.monitoring import scripts, services
from components.monitoring.render import HostFile, SecretFile, layout

Resolver = Callable[[SecretFile], pulumi.Output[str]]


@dataclass(frozen=True)
class InstallTarget:
    """One host: how to reach it and what to put on it."""

    name: str
    ip: str
    user: str
    connection: remote.ConnectionArgs
    files: tuple[HostFile, ...]
    secrets: tuple[SecretFile, ...]
    only: tuple[str, ...] = services.ORDER
    identity: pulumi.Input[str] | None = None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def install(
    parent: pulumi.Resource,
    config: StackConfig,
    target: InstallTarget,
    resolve: Resolver,
    depends_on: Sequence[pulumi.Resource] = (),
) -> list[remote.Command]:
    """Declare every command for ``target``; returns the per-service apply steps (in order)."""
    name = target.name
    specs = services.specs(config, target.ip, target.files, target.secrets, only=target.only)
    identity: list[Any] = [target.identity] if target.identity is not None else []
    mon = config.monitoring
    pkgs = services.packages(config, specs)
    repo = (
        scripts.GrafanaRepo(mon.grafana_apt_url, mon.grafana_apt_key_fingerprint)
        if services.GRAFANA_REPO_PACKAGES & set(pkgs)
        else None
    )

    def command(role: str, script: str, deps: Sequence[pulumi.Resource], **kwargs: Any) -> remote.Command:
        extra_secret = kwargs.pop("secret_outputs", [])
        return remote.Command(
            f"{name}-{role}",
            connection=target.connection,
            create=scripts.as_root(script, target.user),
            opts=pulumi.ResourceOptions(
                parent=parent, depends_on=list(deps), additional_secret_outputs=list(extra_secret)
            ),
            **kwargs,
        )

    packages = command("packages", scripts.packages_script(pkgs, mon.apt_proxy, repo), depends_on, triggers=identity)
    layout_step = command(
        "layout",
        scripts.layout_script(
            services.directories(specs), target.user, scripts.staging_dirs(specs), services.group_members(specs)
        ),
        [packages],
        triggers=identity,
    )
    owned = {m.path for spec in specs for m in spec.files}
    staged: dict[str, pulumi.Resource] = {}
    digests: dict[str, pulumi.Input[str]] = {}
    for f in target.files:
        if f.path not in owned:
            continue
        staged[f.path] = remote.CopyToRemote(
            f"{name}-stage-{slug(f.path)}",
            connection=target.connection,
            source=pulumi.StringAsset(f.content),
            remote_path=layout.STAGING_DIR + f.path,
            triggers=[sha256(f.content), *identity],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[layout_step]),
        )
        digests[f.path] = sha256(f.content)
    for s in target.secrets:
        if s.path not in owned:
            continue
        content = resolve(s)
        staged[s.path] = command(
            f"secret-{slug(s.path)}",
            scripts.stage_secret_script(s.path),
            [layout_step],
            stdin=content,
            triggers=identity,
            secret_outputs=["stdin"],
        )
        # A digest of a secret is kept secret too (it would confirm a guessed value).
        digests[s.path] = pulumi.Output.secret(content.apply(sha256))
    applied: list[remote.Command] = []
    previous: list[pulumi.Resource] = [layout_step]
    for spec in specs:
        paths = [m.path for m in spec.files]
        step = command(
            f"apply-{spec.name.replace('_', '-')}",
            scripts.apply_script(spec),
            [*previous, *(staged[p] for p in paths)],
            triggers=[*(digests[p] for p in paths), *identity],
        )
        applied.append(step)
        previous = [step]
    return applied
