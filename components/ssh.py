"""SSH connections for pulumi-command: one way to reach a host, keys only from secrets."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_command import remote


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
