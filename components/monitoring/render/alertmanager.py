"""alertmanager.yml for every monitoring host (routing content: components/routing.py)."""

from __future__ import annotations

from typing import Any

import yaml

from components.config import StackConfig
from components.inventory import Inventory
from components.monitoring.render import HostFile

CONFIG_PATH = "/etc/prometheus/alertmanager.yml"


def render(config: StackConfig, inventory: Inventory) -> str:
    document: dict[str, Any] = {
        "route": {"receiver": "blackhole", "group_by": ["alertname"]},
        "receivers": [{"name": "blackhole"}],
    }
    return yaml.safe_dump(document, sort_keys=True)


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    content = render(config, inventory)
    return [HostFile(m.name, CONFIG_PATH, content, owner="root", group="prometheus") for m in inventory.monitoring]
