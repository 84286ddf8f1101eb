"""The Prometheus config, the alert rules and the Grafana dashboards of ops/,
checked without Prometheus or Grafana (neither runs here; no promtool either).

Every alert expression and every dashboard query is parsed with promql_parser,
and every metric it names must be one the code exports: the quoter's families
(`QuoterMetrics.family_names()`), the web process's (`WEB_FAMILIES`),
django-prometheus's, and Prometheus's own `up`. A renamed metric therefore
fails here, not silently on a dashboard. The files' paths are checked against
docker-compose's volume mounts, so what is checked is what the containers read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import promql_parser
import pytest
import yaml

from common.metrics import WEB_FAMILIES
from quoting_worker.adapters.metrics import QuoterMetrics

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_YML = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = ROOT / "ops" / "grafana"
DATASOURCES_YML = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_YML = GRAFANA_DIR / "provisioning" / "dashboards" / "mms.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
OVERVIEW_JSON = DASHBOARDS_DIR / "mms-overview.json"

# The django-prometheus families the dashboards use (the web's /metrics).
DJANGO_PROMETHEUS = frozenset(
    {
        "django_http_requests_total_by_view_transport_method",
        "django_http_responses_total_by_status_view_method",
        "django_http_requests_latency_seconds_by_view_method",
    }
)
PROMETHEUS_OWN = frozenset({"up"})
# Metric families (counters without `_total`), from the code that exports them.
EXPORTED: frozenset[str] = (
    frozenset(QuoterMetrics.family_names()) | WEB_FAMILIES | DJANGO_PROMETHEUS | PROMETHEUS_OWN
)
# A family's samples: counters end in _total; histograms expose _bucket/_sum/_count.
SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")

# SPEC's metrics: the ops config must use every one of them somewhere.
SPEC_METRICS = frozenset(
    {
        "mm_quoter_info",
        "mm_quoter_hosted_pools",
        "mm_pool_member_count",
        "mm_pool_state",
        "mm_pool_quoting",
        "mm_pool_day_pnl",
        "mm_pool_inventory",
        "mm_pool_net_position",
        "mm_pool_member_pnl",
        "mm_pool_member_unrealised_pnl",
        "mm_pool_member_inventory",
        "mm_pool_member_open_orders",
        "mm_pool_book_staleness_seconds",
        "mm_pool_event_queue_depth",
        "mm_pool_event_lag_seconds",
        "mm_pool_quote_compute_latency_seconds",
        "mm_pool_allocation_latency_seconds",
        "mm_pool_kill_switch",
        "mm_pool_orders_sent",
        "mm_pool_order_events",
        "mm_pool_fills",
        "mm_kafka_consumer_lag_seconds",
        "mm_kafka_messages",
        "mm_kafka_messages_skipped",
        "mm_order_service_request_duration_seconds",
        "mm_performance_snapshot",
        "mm_performance_rollup",
        "mm_settlement_count",
        "mm_pool_q_score",
        "mm_outbox_backlog",
        "mm_outbox_oldest_unsent_age_seconds",
        "mm_celery_tasks",
    }
)
REQUIRED_ALERTS = frozenset(
    {
        "MMPoolHalted",
        "MMStaleBook",
        "MMRejectStorm",
        "MMKafkaConsumerLag",
        "MMOutboxBacklog",
        "MMQuoterDown",
        "MMKillSwitchFired",
        "MMCeleryTaskFailures",
        "MMOrderServiceErrors",
        "MMEventQueueBacklog",
    }
)
SEVERITIES = frozenset({"critical", "warning", "info"})
SCRAPE_JOBS = {"mms-quoter": ("quoter:9090", "/metrics"), "mms-web": ("web:3001", "/metrics")}

# Grafana's interval variables are not PromQL; a stand-in duration makes the
# query parseable (label values such as "$symbol" are strings and parse as is).
GRAFANA_DURATIONS = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{__\w+\}")


# ------------------------------------------------------------------ the checker


def exported_sample_names(families: Iterable[str] = EXPORTED) -> frozenset[str]:
    return frozenset(family + suffix for family in families for suffix in SAMPLE_SUFFIXES)


def family_of(name: str, families: Iterable[str] = EXPORTED) -> str | None:
    """The exported family whose sample `name` is, or None."""
    for family in families:
        if any(name == family + suffix for suffix in SAMPLE_SUFFIXES):
            return family
    return None


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector of `expr` (ValueError when it does not parse)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(GRAFANA_DURATIONS.sub("5m", expr)), visit)
    return found


def _matchers(selector: promql_parser.VectorSelector) -> Iterator[promql_parser.Matcher]:
    yield from selector.matchers.matchers
    for group in selector.matchers.or_matchers:
        yield from group


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects: `name{...}` and `{__name__="name"}`.

    A regex or negative `__name__` matcher cannot be checked, so it is refused."""
    names: set[str] = set()
    for selector in selectors(expr):
        if selector.name:
            names.add(selector.name)
        for matcher in _matchers(selector):
            if matcher.name != "__name__":
                continue
            if matcher.op != promql_parser.MatchOp.Equal:
                raise ValueError(f"uncheckable __name__ matcher {matcher.op} {matcher.value!r}")
            names.add(matcher.value)
    if not names:
        raise ValueError("selects no metric")
    return names


def label_values(expr: str, label: str) -> set[str]:
    """The values `expr` matches `label` with exactly (`label="value"`)."""
    return {
        m.value
        for selector in selectors(expr)
        for m in _matchers(selector)
        if m.name == label and m.op == promql_parser.MatchOp.Equal
    }


def expr_problems(where: str, expr: object, used: set[str] | None = None) -> list[str]:
    """What is wrong with one expression: it does not parse, or it names a metric
    nobody exports. The names it uses are added to `used`."""
    if not isinstance(expr, str) or not expr.strip():
        return [f"{where}: no expression"]
    try:
        names = metric_names(expr)
    except ValueError as exc:
        return [f"{where}: {expr!r} does not parse: {exc}"]
    if used is not None:
        used |= names
    missing = sorted(n for n in names if n not in exported_sample_names())
    return [f"{where}: {expr!r} uses metrics not exported: {missing}"] if missing else []


def rule_problems(rule: Mapping[str, Any], used: set[str] | None = None) -> list[str]:
    """What is wrong with one alerting rule (empty when it is complete and sound)."""
    where = f"alert {rule.get('alert', '<unnamed>')!r}"
    problems = []
    if not isinstance(rule.get("alert"), str) or not rule["alert"]:
        problems.append(f"{where}: no alert name")
    duration = rule.get("for")
    if not isinstance(duration, str) or not re.fullmatch(r"(\d+[smhdwy])+", duration):
        problems.append(f"{where}: `for` {duration!r} is not a duration")
    labels = rule.get("labels") or {}
    if labels.get("severity") not in SEVERITIES:
        problems.append(f"{where}: labels.severity {labels.get('severity')!r} not in {SEVERITIES}")
    annotations = rule.get("annotations") or {}
    for key in ("summary", "description", "runbook"):
        if not str(annotations.get(key) or "").strip():
            problems.append(f"{where}: no annotations.{key}")
    return problems + expr_problems(where, rule.get("expr"), used)


def dashboard_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            where = (
                f"panel {panel.get('title')!r} (id {panel.get('id')}) target {target.get('refId')}"
            )
            yield where, target


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


# ------------------------------------------------------------------ the files


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules() -> list[dict[str, Any]]:
    groups = _yaml(ALERTS_YML)["groups"]
    assert groups, "alerts.yml has no groups"
    return [rule for group in groups for rule in group["rules"]]


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _service(name: str) -> dict[str, Any]:
    return _yaml(ROOT / "docker-compose.yml")["services"][name]


def _mounts(service: Mapping[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path → repository path of a service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        assert host.startswith("./"), f"{volume}: not a bind mount of the repository"
        mounts[PurePosixPath(container)] = (ROOT / host).resolve()
    return mounts


def _on_host(mounts: Mapping[PurePosixPath, Path], container_path: PurePosixPath) -> Path:
    """Where a file a container reads lives in the repository."""
    for target, host in sorted(mounts.items(), key=lambda m: -len(m[0].parts)):
        if container_path == target or target in container_path.parents:
            return host.joinpath(*container_path.relative_to(target).parts)
    raise AssertionError(f"{container_path} is not mounted from the repository")


def _used_metrics() -> set[str]:
    used: set[str] = set()
    for rule in _rules():
        rule_problems(rule, used)
    for dashboard in _dashboards().values():
        for where, target in dashboard_targets(dashboard):
            expr_problems(where, target.get("expr"), used)
    return used


# ------------------------------------------------------------------ alerts


def test_every_alert_rule_is_complete_parses_and_uses_exported_metrics():
    rules = _rules()
    problems = [p for rule in rules for p in rule_problems(rule)]
    assert not problems, "\n".join(problems)
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), f"duplicate alerts in {names}"


def test_the_required_alerts_are_there():
    missing = REQUIRED_ALERTS - {rule["alert"] for rule in _rules()}
    assert not missing, f"missing alerts: {sorted(missing)}"


def test_alerts_select_only_scraped_jobs():
    jobs = {c["job_name"] for c in _yaml(PROMETHEUS_YML)["scrape_configs"]}
    named = {job for rule in _rules() for job in label_values(rule["expr"], "job")}
    assert named, "no alert watches a scrape target (MMQuoterDown should)"
    assert named <= jobs, f"alerts name jobs Prometheus does not scrape: {named - jobs}"


def test_the_checker_catches_a_metric_nobody_exports():
    """The same checker as above, on crafted rules: it cannot pass vacuously."""
    rule = {
        "alert": "Crafted",
        "expr": 'sum by (symbol) (rate(mm_pool_no_such_metric_total[5m])) > 0 or up{job="x"} == 0',
        "for": "1m",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "s", "description": "d", "runbook": "r"},
    }
    problems = rule_problems(rule)
    assert len(problems) == 1
    assert "mm_pool_no_such_metric_total" in problems[0]
    assert "'up'" not in problems[0]
    # `{__name__="..."}` is a metric name too, and a family's made-up suffix is not exported.
    assert "mm_made_up" in " ".join(
        rule_problems({**rule, "expr": 'absent({__name__="mm_made_up"})'})
    )
    assert rule_problems({**rule, "expr": "mm_pool_fills_created"})
    # The sound version passes, so the failure above is the metric's.
    assert rule_problems({**rule, "expr": "sum(rate(mm_pool_fills_total[5m])) > 0"}) == []
    assert "does not parse" in " ".join(rule_problems({**rule, "expr": "rate(mm_pool_fills[5m"}))
    incomplete = rule_problems({"alert": "Crafted", "expr": "up == 0"})
    assert len(incomplete) == 5, incomplete  # for, severity, summary, description, runbook


# ------------------------------------------------------------------ dashboards


def test_every_dashboard_query_parses_and_uses_exported_metrics():
    dashboards = _dashboards()
    assert OVERVIEW_JSON.name in dashboards
    problems = []
    for name, dashboard in dashboards.items():
        targets = list(dashboard_targets(dashboard))
        assert targets, f"{name} has no queries"
        problems += [
            p for where, t in targets for p in expr_problems(f"{name} {where}", t.get("expr"))
        ]
    assert not problems, "\n".join(problems)


def test_every_dashboard_panel_has_a_unique_id_and_the_prometheus_datasource():
    for name, dashboard in _dashboards().items():
        assert dashboard["schemaVersion"] == 39, name
        assert dashboard.get("uid"), f"{name} has no uid"
        ids = [panel.get("id") for panel in all_panels(dashboard)]
        assert None not in ids, f"{name}: a panel has no id"
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {sorted(ids)}"
        for panel in all_panels(dashboard):
            title = f"{name} panel {panel.get('title')!r}"
            assert (panel.get("datasource") or {}).get("uid") == "prometheus", title
            for target in panel.get("targets", []):
                assert (target.get("datasource") or {}).get("uid", "prometheus") == "prometheus", (
                    title
                )
    uids = [d["uid"] for d in _dashboards().values()]
    assert len(uids) == len(set(uids))


def test_the_symbol_variable_lists_the_pools():
    variables = {v["name"]: v for v in json.loads(OVERVIEW_JSON.read_text())["templating"]["list"]}
    symbol = variables["symbol"]
    assert symbol["datasource"]["uid"] == "prometheus"
    query = symbol["query"]["query"] if isinstance(symbol["query"], dict) else symbol["query"]
    match = re.fullmatch(r"label_values\((\w+),\s*symbol\)", query.strip())
    assert match, query
    assert match.group(1) == "mm_pool_member_count"
    assert family_of(match.group(1)) is not None, f"{match.group(1)} is not exported"


def test_the_metrics_used_cover_spec():
    used = _used_metrics()
    assert used, "no metric used at all"
    covered = {family_of(name) for name in used}
    missing = SPEC_METRICS - covered
    assert not missing, f"SPEC metrics neither alerted on nor shown: {sorted(missing)}"


@pytest.mark.parametrize("family", sorted(SPEC_METRICS))
def test_spec_metrics_are_exported(family):
    """SPEC's list and the code agree (so covering SPEC means something)."""
    assert family in EXPORTED


# ------------------------------------------------------------------ prometheus and compose


def test_prometheus_scrapes_both_processes_and_loads_the_alerts():
    config = _yaml(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    for job, (target, path) in SCRAPE_JOBS.items():
        assert job in jobs, f"no scrape job {job}"
        targets = [t for sc in jobs[job]["static_configs"] for t in sc["targets"]]
        assert targets == [target], job
        assert jobs[job].get("metrics_path", "/metrics") == path, job

    service = _service("prometheus")
    mounts = _mounts(service)
    flags = dict(arg.split("=", 1) for arg in service["command"] if "=" in arg)
    config_in_container = PurePosixPath(flags["--config.file"])
    assert _on_host(mounts, config_in_container) == PROMETHEUS_YML
    # Prometheus resolves rule files relative to its config file.
    rule_files = config["rule_files"]
    assert rule_files, "no rule_files"
    resolved = {_on_host(mounts, config_in_container.parent / f) for f in rule_files}
    assert resolved == {ALERTS_YML}, resolved


def test_grafana_provisioning_matches_the_compose_mounts():
    mounts = _mounts(_service("grafana"))
    provisioning = _on_host(mounts, PurePosixPath("/etc/grafana/provisioning"))
    assert DATASOURCES_YML.parent == provisioning / "datasources"
    assert DASHBOARD_PROVIDERS_YML.parent == provisioning / "dashboards"

    datasources = {d["uid"]: d for d in _yaml(DATASOURCES_YML)["datasources"]}
    assert datasources["prometheus"]["type"] == "prometheus"
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    assert "prometheus" in _yaml(ROOT / "docker-compose.yml")["services"]

    providers = _yaml(DASHBOARD_PROVIDERS_YML)["providers"]
    paths = {_on_host(mounts, PurePosixPath(p["options"]["path"])) for p in providers}
    assert paths == {DASHBOARDS_DIR}, paths
    assert all(p["type"] == "file" for p in providers)
