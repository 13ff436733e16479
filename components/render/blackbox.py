"""blackbox.yml: the probe modules the inventory's probes use (http_2xx, tcp_connect, icmp)."""

from __future__ import annotations

from typing import Any

from components.config import StackConfig
from components.inventory import Inventory
from components.render import HostFile, layout, yamlout


def render(config: StackConfig, inventory: Inventory) -> str:
    timeout = "5s"
    modules: dict[str, Any] = {
        "http_2xx": {
            "prober": "http",
            "timeout": timeout,
            "http": {
                "preferred_ip_protocol": "ip4",
                "ip_protocol_fallback": True,
                "follow_redirects": True,
                "valid_status_codes": [],  # empty = any 2xx
                "fail_if_not_ssl": False,
            },
        },
        "tcp_connect": {"prober": "tcp", "timeout": timeout, "tcp": {"preferred_ip_protocol": "ip4"}},
        "icmp": {"prober": "icmp", "timeout": timeout, "icmp": {"preferred_ip_protocol": "ip4"}},
    }
    return yamlout.dump({"modules": modules})


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    content = render(config, inventory)
    return [HostFile(m.name, layout.BLACKBOX_CONFIG, content, group="prometheus") for m in inventory.monitoring]
