"""Shared defaults for every dashboard: datasources, queries, panel shapes, thresholds.

Each dashboard module writes one small function per panel on top of these, so units, legends,
thresholds and sizes look the same everywhere and a change of style is a change here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import bargauge, logs, loki, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

# Fixed datasource uids: components/grafana/config.py creates the datasources with these uids.
PROMETHEUS_UID = "prometheus"
LOKI_UID = "loki"
ALERTMANAGER_UID = "alertmanager"
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
LOKI = model.DataSourceRef(type_val="loki", uid=LOKI_UID)

TAGS = ["obsstack"]
DEFAULT_RANGE = ("now-24h", "now")
REFRESH = "1m"
GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"

Query = prometheus.Dataquery | loki.Dataquery
Panel = cogbuilder.Builder[model.Panel]
Step = tuple[float | None, str]


def prom(expr: str, legend: str = "__auto", *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(PROMETHEUS)
    return query.instant() if instant else query.range()


def logql(expr: str, legend: str = "__auto") -> loki.Dataquery:
    return loki.Dataquery().expr(expr).legend_format(legend).datasource(LOKI)


def thresholds(*steps: Step) -> dashboard_builder.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def higher_is_worse(warn: float, crit: float) -> dashboard_builder.ThresholdsConfig:
    return thresholds((None, GREEN), (warn, ORANGE), (crit, RED))


def lower_is_worse(target: float) -> dashboard_builder.ThresholdsConfig:
    return thresholds((None, RED), (target, GREEN))


def status_map(ok: str = "OK", failed: str = "FAILED", *, ok_value: int = 1) -> list[model.ValueMapping]:
    """Text and colour for a 0/1 status; obs_*_status metrics use 1 for success."""
    return [
        model.ValueMap(
            options={
                str(ok_value): model.ValueMappingResult(text=ok, color=GREEN, index=0),
                str(1 - ok_value): model.ValueMappingResult(text=failed, color=RED, index=1),
            }
        )
    ]


def _frame(panel: Any, text: tuple[str, str], unit: str, size: tuple[int, int], queries: Sequence[Query]) -> Any:
    """What every panel sets: title and description, datasource, unit, size, its queries A, B, ..."""
    title, description = text
    width, height = size
    datasource = LOKI if isinstance(queries[0], loki.Dataquery) else PROMETHEUS
    panel.title(title).description(description).datasource(datasource).unit(unit).span(width).height(height)
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(query.ref_id(ref))
    return panel


def _bounds(panel: Any, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None:
        panel.min(minimum)
    if maximum is not None:
        panel.max(maximum)


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    limits: dashboard_builder.ThresholdsConfig | None = None,
    width: int = 12,
    height: int = 8,
    minimum: float | None = None,
    maximum: float | None = None,
    stacked: bool = False,
    max_points: int | None = None,
) -> timeseries.Panel:
    """``max_points``: Grafana's "Max data points" (default: the panel's width in pixels); the
    query step is the range divided by it (grafana.com/docs/grafana/v9.1/panels/query-options/)."""
    panel = (
        _frame(timeseries.Panel(), (title, description), unit, (width, height), queries)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    if limits is not None:
        panel.thresholds(limits).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.LINE)
        )
    _bounds(panel, minimum, maximum)
    if stacked:
        panel.stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    if max_points is not None:
        panel.max_data_points(max_points)
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    limits: dashboard_builder.ThresholdsConfig,
    width: int = 6,
    height: int = 4,
    mappings: list[model.ValueMapping] | None = None,
    no_value: str | None = None,
) -> stat.Panel:
    panel = (
        _frame(stat.Panel(), (title, description), unit, (width, height), queries)
        .thresholds(limits)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel.mappings(mappings)
    if no_value is not None:
        panel.no_value(no_value)
    return panel


def bargauge_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    limits: dashboard_builder.ThresholdsConfig,
    width: int = 12,
    height: int = 8,
    minimum: float | None = None,
    maximum: float | None = None,
) -> bargauge.Panel:
    panel = (
        _frame(bargauge.Panel(), (title, description), unit, (width, height), queries)
        .thresholds(limits)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    _bounds(panel, minimum, maximum)
    return panel


def table_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    unit: str = "short",
) -> table.Panel:
    return _frame(table.Panel(), (title, description), unit, (width, height), queries).with_transformation(
        model.DataTransformerConfig(id_val="merge", options={})
    )


def logs_panel(title: str, description: str, query: loki.Dataquery, *, width: int = 24, height: int = 10) -> logs.Panel:
    return (
        _frame(logs.Panel(), (title, description), "short", (width, height), [query])
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
    )


def query_variable(
    name: str, label: str, query: str, *, datasource: model.DataSourceRef = PROMETHEUS, all_by_default: bool = True
) -> Any:
    """A multi-select variable refreshed with the time range: with an All option selected by
    default, or (``all_by_default=False``, a selector such as the host picker) opening on the
    first value so the dashboard loads one host's series, not every host's."""
    variable = (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(datasource)
        .query(query)
        .multi(True)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if all_by_default:
        variable.include_all(True).all_value(".*").current(
            model.VariableOption(selected=True, text="All", value="$__all")
        )
    return variable


def new_dashboard(title: str, uid: str, description: str) -> dashboard_builder.Dashboard:
    return (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time(*DEFAULT_RANGE)
        .refresh(REFRESH)
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )


def to_json(board: dashboard_builder.Dashboard) -> str:
    """Deterministic JSON: panel ids numbered in order, keys sorted, stable indentation."""
    data = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    next_id = 1
    for panel in data.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for child in panel.get("panels", []):
            child["id"] = next_id
            next_id += 1
    for variable in data.get("templating", {}).get("list", []):
        variable.pop("id", None)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
