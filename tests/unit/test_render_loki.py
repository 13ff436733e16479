"""Loki: TSDB + schema v13, retention really enabled, limits from the sizing, S3 without secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import loki

DOC = Path(__file__).resolve().parents[2] / "docs" / "loki-sizing.md"


def rendered(sections: dict[str, Any]) -> dict[str, Any]:
    config = stack_config.validate(sections)
    return yaml.safe_load(loki.render(config, stack_inventory.build(config)))


def test_tsdb_schema_v13_and_retention_enabled(example_sections: dict[str, Any]) -> None:
    doc = rendered(example_sections)
    [period] = doc["schema_config"]["configs"]
    assert (period["store"], period["schema"], period["object_store"]) == ("tsdb", "v13", "filesystem")
    assert period["index"]["period"] == "24h"
    compactor = doc["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert doc["limits_config"]["retention_period"] == "720h"
    assert doc["server"]["http_tls_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
    assert doc["analytics"]["reporting_enabled"] is False


@pytest.mark.parametrize(("lines", "expected_rate"), [(2000, 4), (20000, 26)], ids=["2k-lines", "20k-lines"])
def test_limits_follow_the_target_rate(example_sections: dict[str, Any], lines: int, expected_rate: int) -> None:
    example_sections["loki"]["target_lines_per_second"] = lines
    example_sections["monitoring"]["vm"]["data_disk_gb"] = 4000  # 10x the logs need 10x the disk
    limits = rendered(example_sections)["limits_config"]
    assert limits["ingestion_rate_mb"] == expected_rate
    assert limits["ingestion_burst_size_mb"] == expected_rate * loki.BURST_SECONDS
    # The limit must admit the peak (sustained x burst factor) with headroom.
    peak_mib = lines * 300 * 3.0 / loki.MIB
    assert limits["ingestion_rate_mb"] >= peak_mib * loki.HEADROOM


def test_s3_keeps_the_secret_out_of_the_file(example_sections: dict[str, Any]) -> None:
    example_sections["loki"] |= {
        "storage": "s3",
        "s3": {
            "endpoint": "s3.lab.example.net:9000",
            "bucket": "loki",
            "access_key_id": "loki",
            "secret_access_key_secret": "lokiS3Secret",
        },
    }
    doc = rendered(example_sections)
    assert doc["schema_config"]["configs"][0]["object_store"] == "s3"
    assert doc["compactor"]["delete_request_store"] == "s3"
    assert doc["storage_config"]["aws"]["secret_access_key"] == "${LOKI_S3_SECRET_ACCESS_KEY}"


def test_sizing_document_quotes_the_rendered_numbers(example_config: stack_config.StackConfig) -> None:
    size = loki.sizing(example_config)
    text = DOC.read_text()
    for label, value in (
        ("ingestion_rate_mb", size.ingestion_rate_mb),
        ("ingestion_burst_size_mb", size.ingestion_burst_mb),
        ("per_stream_rate_limit", size.per_stream_rate_mb),
        ("max_concurrent", size.querier_concurrency),
        ("max_query_parallelism", size.query_parallelism),
    ):
        assert re.search(rf"`{label}`[^\n]*\|\s*{value}\s*\|", text), (
            f"docs/loki-sizing.md must state {label} = {value}"
        )
