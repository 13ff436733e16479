"""Declares, under a component, the pulumi-command resources that install services on one host:
packages -> layout -> all plain files and all secrets staged by one command each (stdin) -> one
validate/swap/reload step per service. Used by MonitoringHost and HostAgents; the scripts come from
scripts.py, so the host test runs the very same commands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import remote

from components import ssh
from components.config import StackConfig
from components.monitoring import scripts, services
from components.render import HostFile, SecretFile

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

    def command(
        role: str, script: str, deps: Sequence[pulumi.Resource], manifest: str = "", **kwargs: Any
    ) -> remote.Command:
        extra_secret = kwargs.pop("secret_outputs", [])
        create = scripts.as_root(script, target.user)
        return remote.Command(
            f"{name}-{role}",
            ssh.command_args(target.connection, create=f"{manifest}\n{create}" if manifest else create, **kwargs),
            pulumi.ResourceOptions(parent=parent, depends_on=list(deps), additional_secret_outputs=list(extra_secret)),
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
    plain = {f.path: f.content for f in target.files if f.path in owned}
    secrets = [s for s in target.secrets if s.path in owned]
    secret_digests: dict[str, pulumi.Input[str]] = {}
    staged: dict[str, pulumi.Resource] = {}
    if plain:
        stage_files = command(
            "stage-files",
            scripts.stage_script(secret=False),
            [layout_step],
            stdin=scripts.stage_payload(plain),
            triggers=identity,
        )
        staged.update(dict.fromkeys(plain, stage_files))
    if secrets:
        contents = {s.path: resolve(s) for s in secrets}
        payload = pulumi.Output.all(**contents).apply(scripts.stage_payload)
        stage_secrets = command(
            "stage-secrets",
            scripts.stage_script(secret=True),
            [layout_step],
            stdin=pulumi.Output.secret(payload),
            triggers=identity,
            logging=remote.Logging.NONE,
            secret_outputs=["stdin", "stdout", "stderr"],
        )
        staged.update(dict.fromkeys(contents, stage_secrets))
        # A digest of a secret is kept secret too (it would confirm a guessed value).
        for path, content in contents.items():
            secret_digests[path] = pulumi.Output.secret(content.apply(sha256))
    applied: list[remote.Command] = []
    previous: list[pulumi.Resource] = [layout_step]
    for spec in specs:
        paths = [m.path for m in spec.files]
        # Plain files are named in the script (a readable diff, an in-place update); secrets only
        # by a secret digest in the triggers. These steps have no delete, so a trigger's
        # replacement just runs the apply again.
        step = command(
            f"apply-{spec.name.replace('_', '-')}",
            scripts.apply_script(spec),
            [*previous, *dict.fromkeys(staged[p] for p in paths)],
            manifest=ssh.manifest([f for f in target.files if f.path in paths]),
            triggers=[*(secret_digests[p] for p in paths if p in secret_digests), *identity] or None,
        )
        applied.append(step)
        previous = [step]
    return applied
