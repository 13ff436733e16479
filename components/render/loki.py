"""Loki single-binary config: TSDB + schema v13, filesystem on the durable volume (or S3),
compactor retention actually enabled, limits sized from the loki section (docs/loki-sizing.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from components.config import LOKI_COMPRESSION_RATIO, StackConfig, duration_seconds
from components.inventory import Inventory, MonitoringNode
from components.render import HostFile, layout, yamlout

MIB = 1024 * 1024
SCHEMA_FROM = "2024-04-01"  # first day of the v13 schema period; never change it once data exists
HEADROOM = 1.5  # steady-state ingestion limit above the expected peak
BURST_SECONDS = 10  # a storm the token bucket absorbs above the rate limit
HOT_STREAM_SHARE = 0.25  # the busiest stream's share of the peak
SPLIT_HOURS = 1  # 24 h query = 24 sub-queries run in parallel


@dataclass(frozen=True)
class Sizing:
    lines_per_second: int
    line_bytes: int
    burst_factor: float
    cores: int
    retention_days: int

    @property
    def sustained_mib_s(self) -> float:
        return self.lines_per_second * self.line_bytes / MIB

    @property
    def peak_mib_s(self) -> float:
        return self.sustained_mib_s * self.burst_factor

    @property
    def ingestion_rate_mb(self) -> int:
        return max(4, math.ceil(self.peak_mib_s * HEADROOM))

    @property
    def ingestion_burst_mb(self) -> int:
        return self.ingestion_rate_mb * BURST_SECONDS

    @property
    def per_stream_rate_mb(self) -> int:
        return max(3, math.ceil(self.peak_mib_s * HOT_STREAM_SHARE * HEADROOM))

    @property
    def raw_gib_per_day(self) -> float:
        return self.sustained_mib_s * 86400 / 1024

    @property
    def stored_gib_total(self) -> float:
        return self.raw_gib_per_day / LOKI_COMPRESSION_RATIO * self.retention_days

    @property
    def querier_concurrency(self) -> int:
        return max(4, 2 * self.cores)

    @property
    def query_parallelism(self) -> int:
        return max(8, 24 // SPLIT_HOURS)


def sizing(config: StackConfig) -> Sizing:
    loki = config.loki
    return Sizing(
        lines_per_second=loki.target_lines_per_second,
        line_bytes=loki.average_line_bytes,
        burst_factor=loki.burst_factor,
        cores=config.monitoring.vm.cores,
        retention_days=duration_seconds(loki.retention) // 86400,
    )


def _storage(config: StackConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(object_store name, common.storage, storage_config additions)."""
    s3 = config.loki.s3
    if config.loki.storage == "s3" and s3 is not None:
        aws = {
            "endpoint": s3.endpoint,
            "bucketnames": s3.bucket,
            "region": s3.region,
            "access_key_id": s3.access_key_id,
            # Expanded from /etc/loki/secrets/loki.env (-config.expand-env): never in this file.
            "secret_access_key": "${LOKI_S3_SECRET_ACCESS_KEY}",
            "s3forcepathstyle": True,
        }
        return "s3", {"s3": aws}, {"aws": aws}
    return (
        "filesystem",
        {
            "filesystem": {
                "chunks_directory": f"{layout.LOKI_DATA}/chunks",
                "rules_directory": f"{layout.LOKI_DATA}/rules",
            }
        },
        {},
    )


def render(config: StackConfig, inventory: Inventory, node: MonitoringNode | None = None) -> str:
    node = node or inventory.monitoring[0]
    size = sizing(config)
    document: dict[str, Any] = {
        "auth_enabled": False,
        "server": _server(config, node),
        **_storage_sections(config),
        **_write_path(config),
        "limits_config": _limits(config),
        "querier": {"max_concurrent": size.querier_concurrency},
        "query_range": {
            "align_queries_with_step": True,
            "cache_results": True,
            "results_cache": {"cache": {"embedded_cache": {"enabled": True, "max_size_mb": 512}}},
        },
        "chunk_store_config": {"chunk_cache_config": {"embedded_cache": {"enabled": True, "max_size_mb": 1024}}},
        "frontend": {"max_outstanding_per_tenant": 2048, "log_queries_longer_than": "5s"},
        "analytics": {"reporting_enabled": False},
    }
    return yamlout.dump(document)


def _server(config: StackConfig, node: MonitoringNode) -> dict[str, Any]:
    tls_dir = layout.LOKI_TLS_DIR
    return {
        "http_listen_address": node.ip,
        "http_listen_port": config.monitoring.ports.loki,
        "grpc_listen_address": "127.0.0.1",
        "grpc_listen_port": 9095,
        # Mutual TLS: only holders of a certificate from the stack's CA may push or query.
        "http_tls_config": {
            "cert_file": f"{tls_dir}/{layout.CERT_FILE}",
            "key_file": f"{tls_dir}/{layout.KEY_FILE}",
            "client_ca_file": f"{tls_dir}/{layout.CA_FILE}",
            "client_auth_type": "RequireAndVerifyClientCert",
        },
        "http_server_read_timeout": config.loki.query_timeout,
        "http_server_write_timeout": config.loki.query_timeout,
        "grpc_server_max_recv_msg_size": 16 * MIB,
        "grpc_server_max_send_msg_size": 16 * MIB,
        "log_level": "info",
    }


def _storage_sections(config: StackConfig) -> dict[str, Any]:
    """Where chunks and the TSDB index live (filesystem or S3), and the schema."""
    store, common_storage, storage_extra = _storage(config)
    return {
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": layout.LOKI_DATA,
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
            "storage": common_storage,
        },
        "schema_config": {
            "configs": [
                {
                    "from": SCHEMA_FROM,
                    "store": "tsdb",
                    "object_store": store,
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "storage_config": {
            "tsdb_shipper": {
                "active_index_directory": f"{layout.LOKI_DATA}/tsdb-index",
                "cache_location": f"{layout.LOKI_DATA}/tsdb-cache",
            },
            **storage_extra,
        },
    }


def _write_path(config: StackConfig) -> dict[str, Any]:
    """Compaction with retention, and the ingester's chunking and WAL."""
    store, _, _ = _storage(config)
    return {
        "compactor": {
            "working_directory": f"{layout.LOKI_DATA}/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            "retention_delete_worker_count": 150,
            "delete_request_store": store,
        },
        "ingester": {
            "chunk_encoding": "snappy",
            "chunk_target_size": 1572864,
            "chunk_idle_period": "30m",
            "max_chunk_age": "2h",
            "wal": {"enabled": True, "dir": f"{layout.LOKI_DATA}/wal", "replay_memory_ceiling": "1GB"},
        },
    }


def _limits(config: StackConfig) -> dict[str, Any]:
    """Per-tenant limits sized from the configured ingest rate (docs/loki-sizing.md)."""
    size = sizing(config)
    retention_hours = duration_seconds(config.loki.retention) // 3600
    return {
        "retention_period": f"{retention_hours}h",
        "ingestion_rate_strategy": "local",
        "ingestion_rate_mb": size.ingestion_rate_mb,
        "ingestion_burst_size_mb": size.ingestion_burst_mb,
        "per_stream_rate_limit": f"{size.per_stream_rate_mb}MB",
        "per_stream_rate_limit_burst": f"{size.per_stream_rate_mb * BURST_SECONDS // 2}MB",
        "max_global_streams_per_user": 10000,
        "max_label_names_per_series": 15,
        "reject_old_samples": True,
        "reject_old_samples_max_age": "168h",
        "max_query_length": f"{retention_hours + 24}h",
        "max_query_parallelism": size.query_parallelism,
        "split_queries_by_interval": f"{SPLIT_HOURS}h",
        "query_timeout": config.loki.query_timeout,
        "max_entries_limit_per_query": 5000,
        "allow_structured_metadata": True,
        "volume_enabled": True,
    }


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    return [
        HostFile(m.name, layout.LOKI_CONFIG, render(config, inventory, m), mode="0640", group="loki")
        for m in inventory.monitoring
    ]
