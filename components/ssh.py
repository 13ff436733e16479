"""SSH connections and command arguments for pulumi-command: one way to reach a host.

Facts about pulumi-command 1.2.1 (its schema in ../shared/provider-schema, its remote provider in
provider/pkg/provider/remote/commandOutputs.go) that every command here follows:
- ``triggers`` is ``replaceOnChanges``: a changed trigger *replaces* the command, create-before-
  delete, so the old ``delete`` runs after the new ``create``. A command with a ``delete`` never
  has triggers; a changed ``create``/``update`` string already updates in place.
- Should such a command ever be replaced anyway (the first ``up`` of a stack made while these
  commands still had triggers: removing them is a change of a ``replaceOnChanges`` input), it is
  deleted before it is replaced, so the job is written again last (``job_options``).
- ``addPreviousOutputInEnv`` (default true) sends the previous stdout/stderr as
  ``PULUMI_COMMAND_STDOUT``/``_STDERR`` through SSH ``setenv``, which sshd refuses unless
  ``AcceptEnv`` lists them (Debian's default accepts only ``LANG LC_*``), and which would carry a
  secret stdout over the wire. Off everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
from pulumi_command import remote

from components.render import HostFile


def connection(host: pulumi.Input[str], user: str, private_key: Any, port: int = 22) -> remote.ConnectionArgs:
    """Connection to ``user@host`` with the stack's SSH key (a secret Output)."""
    return remote.ConnectionArgs(
        host=host,
        user=user,
        port=port,
        private_key=private_key,
        dial_error_limit=20,
        per_dial_timeout=15,
    )


def command_args(connection: remote.ConnectionArgs, **kwargs: Any) -> remote.CommandArgs:
    """``CommandArgs`` that push no environment at sshd (see the module doc)."""
    return remote.CommandArgs(connection=connection, add_previous_output_in_env=False, **kwargs)


def job_options(opts: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    """Options of a command that writes a job or a hook and removes it on delete."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))


def manifest(files: list[HostFile]) -> str:
    """Shell comment lines ``# <path> <mode> sha256:<digest>``, one per file, sorted by path.

    Put in a command's script, they make ``pulumi preview --diff`` name each file that changed
    (by path) and make the change an in-place update of that command.
    """
    return "\n".join(
        f"# {f.path} {f.mode} sha256:{hashlib.sha256(f.content.encode()).hexdigest()}"
        for f in sorted(files, key=lambda f: f.path)
    )
