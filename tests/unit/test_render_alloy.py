"""Alloy configs: one per host, host/service/level labels, bounded label sets, every Loki."""

from __future__ import annotations

import re

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alloy


def configs(config: stack_config.StackConfig, inventory: stack_inventory.Inventory) -> dict[str, str]:
    return {f.host: f.content for f in alloy.files(config, inventory)}


def test_every_host_ships_its_own_labels(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    shipped = configs(example_config, example_inventory)
    expected = {a.name: a.service for a in example_inventory.managed_hosts}
    expected |= {m.name: "monitoring" for m in example_inventory.monitoring}
    assert set(shipped) == set(expected)
    for host, service in expected.items():
        text = shipped[host]
        assert f'host = "{host}", service = "{service}"' in text
        assert text.count("{") == text.count("}"), f"unbalanced braces in {host}'s config"
        for m in example_inventory.monitoring:
            assert f'"https://{m.ip}:{example_config.monitoring.ports.loki}/loki/api/v1/push"' in text


def test_level_values_are_a_closed_list(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    text = alloy.render(example_config, example_inventory)
    replacements = set(re.findall(r'replacement\s*=\s*"([^"]+)"', text))
    assert replacements == {"critical", "error", "warning", "info", "debug"}
    # The only labels set anywhere: fixed per host, or from a closed set.
    targets = set(re.findall(r'target_label\s*=\s*"([^"]+)"', text))
    assert targets <= {"unit", "level"}
    assert 'values = { level = "" }' in text
    assert "__journal__hostname" not in text and "__journal__pid" not in text


# An attribute's value in Alloy syntax: a string, number, bool, list, object, or a reference.
VALUE = re.compile(r'^("([^"\\]|\\.)*"|`[^`]*`|-?\d+(\.\d+)?|true|false|\[.*|\{.*|[a-z_][a-z0-9_.]*)$')


def test_every_attribute_value_is_well_formed(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    for host, text in configs(example_config, example_inventory).items():
        for line in text.splitlines():
            match = re.match(r"^\s*([a-z_]+)\s*=\s*(.+)$", line)
            if match:
                assert VALUE.match(match.group(2).strip()), f"{host}: malformed value in {line!r}"
