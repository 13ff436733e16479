"""The silence policy of a stack, from its config (the host reads the same document as JSON)."""

from __future__ import annotations

from components.config import StackConfig
from components.render.alerting_timers import policy_document
from tools.silences.policy import Policy


def policy(config: StackConfig) -> Policy:
    return Policy.from_document(policy_document(config))
