"""The drift-history dashboard (grafana/dashboards/appraise-history.json) and its PostgreSQL
datasource: every panel's and every variable's SQL, expanded as Grafana expands it, runs against
a history database the real pipeline filled (``tests.consumers.history.pipeline``) and returns
rows of the shape its panel draws; the datasource is provisioned without a password in a file.

The expansion follows Grafana 11: the frontend replaces template variables (the SQL
datasources' quoting: a multi-value or "All" variable becomes ``'a','b'``, a single value is
inserted with its quotes doubled) and ``$__interval``; the backend then expands the macros
(``pkg/tsdb/grafana-postgresql-datasource/macros.go``: ``$__timeFilter(c)`` is
``c BETWEEN '<from>' AND '<to>'`` in RFC 3339 UTC, ``$__timeGroupAlias(c, 1m)`` is
``floor(extract(epoch from c)/60)*60 AS "time"``, epoch seconds Grafana reads as time).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
import pytest_asyncio

from stream.contract.features import FEATURES
from stream.ops.postgres import LocalPostgres
from stream.settings import KafkaSettings
from tests.consumers.history.pipeline import T0, PipelineRun, pipeline_database, run_pipeline
from tests.tools import DASHBOARDS_DIR, DATASOURCES_DIR, ROOT, dashboards, load_yaml, panels

FILE: Final = "appraise-history.json"
DASHBOARD: Final = dashboards()[FILE]
PANELS: Final = list(panels(DASHBOARD))
VARIABLES: Final = DASHBOARD["templating"]["list"]
PROVISIONED: Final = DATASOURCES_DIR / "history.yml"
SQL_TYPE: Final = "grafana-postgresql-datasource"
#: Data points a panel asks for (its width in pixels, about that of a wide panel).
MAX_DATA_POINTS: Final = 1_000


# --- Grafana's expansion ------------------------------------------------------------------------


@dataclass(frozen=True)
class Selected:
    """A template variable's selection: its values, and whether it is multi-value or "All"."""

    values: tuple[str, ...]
    multi: bool

    def sql(self) -> str:
        """The text Grafana's SQL datasources put in its place."""
        if self.multi:
            return ",".join("'" + v.replace("'", "''") + "'" for v in self.values)
        (value,) = self.values
        return value.replace("'", "''")


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range and the interval Grafana derives from it."""

    start: datetime
    end: datetime
    min_interval_s: float

    @property
    def interval_s(self) -> float:
        """Grafana's ``calculateInterval``: the range over the data points, rounded to a nice
        interval, at least the datasource's minimum (its ``timeInterval``)."""
        raw = (self.end - self.start).total_seconds() / MAX_DATA_POINTS
        return max(_round_interval(raw), self.min_interval_s)


# Grafana's roundInterval (rangeutil.ts): an interval below the first bound becomes the second.
_ROUNDED: Final = (
    (0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5),
    (1.5, 1), (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60),
    (210, 120), (450, 300), (750, 600), (1050, 900), (1500, 1200), (2700, 1800),
    (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600), (86400, 43200),
    (604800, 86400), (1814400, 604800), (3628800, 2592000),
)  # fmt: skip
_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _round_interval(seconds: float) -> float:
    return next((nice for bound, nice in _ROUNDED if seconds < bound), 31536000.0)


def parse_interval(text: str) -> float:
    """Seconds of a Grafana interval such as ``1m``, ``30s`` or ``'5m'`` (gtime.ParseInterval)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip().strip("'"))
    assert match, f"not an interval: {text!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_interval(seconds: float) -> str:
    """``$__interval``'s text: ``1m``, ``30m``, ``1h``, ``10s``, ``500ms``."""
    for unit in ("y", "w", "d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and (seconds / _UNITS[unit]).is_integer():
            return f"{round(seconds / _UNITS[unit])}{unit}"
    return f"{round(seconds * 1000)}ms"


def _rfc3339(at: datetime) -> str:
    """Go's RFC3339Nano in UTC: no fraction when whole, trailing zeros dropped."""
    utc = at.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


_VARIABLE: Final = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")
_MACRO: Final = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")  # macros.go's sExpr


def expand(sql: str, variables: Mapping[str, Selected], at: TimeRange) -> str:
    """``sql`` as PostgreSQL receives it from Grafana: template variables and built-ins first
    (the frontend), then the macros (the backend). Anything left with a ``$`` fails."""
    interval = at.interval_s
    builtins = {
        "__interval": format_interval(interval),
        "__interval_ms": str(round(interval * 1000)),
        "__from": str(round(at.start.timestamp() * 1000)),
        "__to": str(round(at.end.timestamp() * 1000)),
    }

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return match.group(0)  # a macro: the backend's
        assert match.group(3) is None, "no [[var:format]] here"
        assert match.group(5) is None, "no ${var:format} here"
        return variables[name].sql()

    frontend = _VARIABLE.sub(variable, sql)

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
        # macros.go: $__timeGroup directly followed by "," is the aliased form (pre-5.3 use).
        if name == "__timeGroup" and frontend[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, args, at)

    backend = _MACRO.sub(macro, frontend)
    assert "$" not in backend, f"not expanded: {backend}"
    return backend


def _macro(name: str, args: list[str], at: TimeRange) -> str:
    start, end = _rfc3339(at.start), _rfc3339(at.end)
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        assert len(args) == 2, f"{name}: a fill value is not expanded here ({args})"
        s = f"{parse_interval(args[1]):g}"
        group = f"floor(extract(epoch from {args[0]})/{s})*{s}"
        return group if name == "__timeGroup" else f'{group} AS "time"'
    raise AssertionError(f"unknown macro ${name}")


def test_the_expansion_is_grafanas() -> None:
    at = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC), 60)
    assert at.interval_s == 1800  # 30 days over 1,000 points: 43 min, rounded to 30 min
    chosen = {"k": Selected(("1m",), multi=False), "f": Selected(("a", "b'c"), multi=True)}
    got = expand(
        "SELECT $__timeGroupAlias(t, $__interval), x FROM w WHERE k = '$k' AND f IN ($f) "
        "AND $__timeFilter(t) AND ${k} = [[k]] AND $__timeFrom() < $__timeTo()",
        chosen,
        at,
    )
    assert got == (
        "SELECT floor(extract(epoch from t)/1800)*1800 AS \"time\", x FROM w WHERE k = '1m' "
        "AND f IN ('a','b''c') AND t BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-31T00:00:00Z' "
        "AND 1m = 1m AND '2026-01-01T00:00:00Z' < '2026-01-31T00:00:00Z'"
    )
    assert Selected(("it's",), multi=False).sql() == "it''s"
    with pytest.raises(AssertionError, match="unknown macro"):
        expand("$__timeBucket(t)", {}, at)
    with pytest.raises(AssertionError, match="not expanded"):
        expand("WHERE k = $unknown", {}, at)


# --- the provisioning ---------------------------------------------------------------------------


def _datasources() -> list[dict[str, Any]]:
    return [
        source
        for path in sorted(DATASOURCES_DIR.glob("*.yml"))
        for source in load_yaml(path)["datasources"]
    ]


def _history_datasource() -> dict[str, Any]:
    (source,) = load_yaml(PROVISIONED)["datasources"]
    return dict(source)


def test_the_history_datasource_is_the_compose_postgres() -> None:
    source = _history_datasource()
    assert source["uid"] == "appraise-history"
    assert source["type"] == SQL_TYPE  # Grafana 11.2 in docker-compose.yml; "postgres" is old
    assert (source["url"], source["user"]) == ("postgres:5432", "appraise")
    assert source["jsonData"]["database"] == "appraise"  # not the deprecated top-level field
    assert source["jsonData"]["sslmode"] == "disable"
    assert source["editable"] is False
    assert source["secureJsonData"] == {"password": "$__file{/run/secrets/postgres_password}"}
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    grafana, postgres = services["grafana"], services["postgres"]
    major, minor, patch = (int(n) for n in grafana["image"].rsplit(":", 1)[1].split("."))
    assert (major, minor, patch) >= (10, 2, 3), "grafana-postgresql-datasource needs 10.2.3"
    # The compose service postgres, and its secret mounted where the datasource reads it.
    assert postgres["environment"]["POSTGRES_USER"] == source["user"]
    assert postgres["environment"]["POSTGRES_DB"] == source["jsonData"]["database"]
    assert "postgres_password" in grafana["secrets"]


def _secrets(node: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every value under a key that names a password or secret, with its path."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            if re.search(r"password|secret|token", str(key), re.IGNORECASE) and not isinstance(
                value, dict | list
            ):
                found.append((path, value))
            found.extend(_secrets(value, path))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found.extend(_secrets(item, f"{where}[{i}]"))
    return found


def test_no_provisioning_file_holds_a_password() -> None:
    for path in sorted(DATASOURCES_DIR.glob("*")):
        for where, value in _secrets(load_yaml(path)):
            assert isinstance(value, str), f"{path.name}{where}: {value!r}"
            assert re.fullmatch(r"\$__(file|env)\{[^}]+\}", value), (
                f"{path.name}{where}: a literal; read it with $__file{{...}} or $__env{{...}}"
            )


def test_the_prometheus_datasource_stays_the_default() -> None:
    sources = {source["uid"]: source for source in _datasources()}
    assert sources["appraise-prometheus"]["type"] == "prometheus"
    assert [uid for uid, source in sources.items() if source.get("isDefault")] == [
        "appraise-prometheus"
    ]


def _references(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict) and node["datasource"].get("type") != "grafana":
            found.append(node["datasource"])
        for value in node.values():
            found.extend(_references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_references(item))
    return found


def test_every_query_uses_the_provisioned_history_datasource() -> None:
    source = _history_datasource()
    references = _references(DASHBOARD)
    assert len(references) >= 2 * len(PANELS) + len(VARIABLES)  # each panel, target, variable
    for reference in references:
        assert reference == {"type": source["type"], "uid": source["uid"]}


def test_the_dashboard_is_provisioned_from_its_folder() -> None:
    (provider,) = load_yaml(ROOT / "grafana" / "provisioning" / "dashboards" / "appraise.yml")[
        "providers"
    ]
    assert provider["type"] == "file"
    assert (DASHBOARDS_DIR / FILE).is_file()  # the provider loads every file of the folder
    grafana = load_yaml(ROOT / "docker-compose.yml")["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name == "appraise-live.json", "the live dashboard stays the home page"


# --- the dashboard ------------------------------------------------------------------------------


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in PANELS if p["title"] == title)


def test_the_header() -> None:
    assert DASHBOARD["uid"] == "appraise-drift-history"
    assert DASHBOARD["time"] == {"from": "now-30d", "to": "now"}
    assert DASHBOARD["timezone"] == "utc"
    # Windows close once a minute at most; a 5 s refresh would only load the database.
    assert DASHBOARD["refresh"] == "1m"
    assert "appraise" in DASHBOARD["tags"]


def test_the_panels_the_history_needs() -> None:
    kinds = {p["title"]: p["type"] for p in PANELS}
    assert kinds == {
        "Drift score per feature": "timeseries",
        "Drifting windows per feature": "bargauge",
        "Prediction and target drift score": "timeseries",
        "Drifting share": "timeseries",
        "Prediction quantiles against the reference": "timeseries",
        "Realised MAE": "timeseries",
        "Realised MAPE": "timeseries",
        "Events and sales per window": "timeseries",
        "Windows that drifted": "table",
    }
    for title in ("Drift score per feature", "Prediction and target drift score"):
        defaults = _panel(title)["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
        assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, 1]
        assert defaults["thresholds"]["steps"][-1]["color"] == "red"
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in PANELS}
    assert units["Prediction quantiles against the reference"] == "currencyUSD"
    assert units["Realised MAE"] == "currencyUSD"
    assert units["Realised MAPE"] == units["Drifting share"] == "percentunit"
    sql = {p["title"]: p["targets"][0]["rawSql"] for p in PANELS}
    for q in ("p10", "p50", "p90", "p99"):
        assert f"avg({q})" in sql["Prediction quantiles against the reference"]
        assert f"avg(reference_{q})" in sql["Prediction quantiles against the reference"]
    for p in PANELS:
        (target,) = p["targets"]
        text = target["rawSql"]
        assert "$__timeFilter(window_start)" in text, p["title"]
        assert "window_kind = '$window'" in text, p["title"]
        assert target["format"] == (
            "table" if p["type"] in ("table", "bargauge") else "time_series"
        )
        if "feature_windows" in text:
            assert "feature = ANY(ARRAY[$feature]::text[])" in text, p["title"]


def test_the_variables_come_from_the_database() -> None:
    window, feature = VARIABLES
    assert (window["name"], feature["name"]) == ("window", "feature")
    for variable in VARIABLES:
        assert variable["type"] == "query"
        assert variable["query"] == variable["definition"]
    assert (window["multi"], window["includeAll"]) == (False, False)
    assert (feature["multi"], feature["includeAll"]) == (True, True)
    assert feature["current"]["value"] == ["$__all"]
    assert feature["refresh"] == 2, "features of the time range: refreshed when it changes"


# --- the queries against the pipeline's database ------------------------------------------------

#: The dashboard's 30 days, ending a day after the pipeline's windows; and minutes around them.
RANGES: Final = {
    "30 days": (T0 - timedelta(days=29), T0 + timedelta(days=1)),
    "zoomed": (T0 - timedelta(minutes=1), T0 + timedelta(minutes=5)),
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(
    kafka_settings: KafkaSettings, model_dir: Path, postgres_server: LocalPostgres
) -> AsyncIterator[PipelineRun]:
    """One run of the real pipeline for the module, into a database of its own."""
    async with pipeline_database(postgres_server) as database:
        yield await run_pipeline(kafka_settings, model_dir, database)


def _range(name: str) -> TimeRange:
    start, end = RANGES[name]
    minimum = parse_interval(_history_datasource()["jsonData"]["timeInterval"])
    return TimeRange(start, end, minimum)


async def _query(conninfo: str, text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cursor = await conn.execute(text)
        assert cursor.description is not None, text
        return [c.name for c in cursor.description], await cursor.fetchall()


async def _options(
    conninfo: str, variable: dict[str, Any], chosen: dict[str, Selected], at: TimeRange
) -> list[str]:
    names, found = await _query(conninfo, expand(variable["query"], chosen, at))
    assert len(names) == 1 or {"__text", "__value"} <= set(names), names
    column = names.index("__value") if "__value" in names else 0
    values = [row[column] for row in found]
    assert all(isinstance(v, str) and v for v in values), values
    return values


async def _selections(conninfo: str, at: TimeRange) -> list[dict[str, Selected]]:
    """Each window kind the database offers, with "All" features and with one chosen."""
    window, feature = VARIABLES
    chosen = []
    for kind in await _options(conninfo, window, {}, at):
        one = {"window": Selected((kind,), multi=False)}
        features = await _options(conninfo, feature, one, at)
        chosen.append({**one, "feature": Selected(tuple(features), multi=True)})
        chosen.append({**one, "feature": Selected(("living_area_sqft",), multi=True)})
    return chosen


@pytest.mark.parametrize("span", sorted(RANGES))
async def test_the_variables_offer_what_the_database_holds(run: PipelineRun, span: str) -> None:
    at = _range(span)
    window, feature = VARIABLES
    kinds = await _options(run.conninfo, window, {}, at)
    assert kinds == ["10s", "20s"]
    for kind in kinds:
        features = await _options(
            run.conninfo, feature, {"window": Selected((kind,), multi=False)}, at
        )
        assert features == sorted(FEATURES)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _epoch(value: Any) -> float:
    """A time column's value as Grafana reads it: a timestamp, or epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    assert _numeric(value), f"not a time: {value!r}"
    return float(value)


def _check_shape(
    panel: dict[str, Any], names: list[str], found: Sequence[tuple[Any, ...]], at: TimeRange
) -> None:
    """The columns the panel's type draws, and names its overrides match."""
    title = panel["title"]
    assert found, f"{title}: no rows"
    columns = dict(zip(names, zip(*found, strict=True), strict=True))
    kinds = {name: {type(v) for v in column if v is not None} for name, column in columns.items()}
    if panel["type"] == "timeseries":
        assert "time" in names, f"{title}: no time column in {names}"
        times = [_epoch(t) for t in columns["time"]]
        assert times == sorted(times), f"{title}: not sorted by time"
        assert all(at.start.timestamp() <= t <= at.end.timestamp() for t in times), title
        values = [n for n in names if n != "time"]
        numeric = [
            n for n in values if kinds[n] and all(_numeric(v) for v in columns[n] if v is not None)
        ]
        labels = [n for n in values if kinds[n] == {str}]  # series names (long format)
        assert numeric, f"{title}: no numeric column in {names}"
        assert set(numeric) | set(labels) == set(values), f"{title}: {kinds}"
        keys = list(zip(columns["time"], *(columns[n] for n in labels), strict=True))
        assert len(keys) == len(set(keys)), f"{title}: one value per time and series"
    elif panel["type"] == "bargauge":
        assert [kinds[n] for n in names] == [{str}, {int}], f"{title}: {kinds}"
    else:
        assert panel["type"] == "table", title
        assert kinds[names[0]] == {datetime}, f"{title}: the first column is the window start"
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        if matcher["id"] == "byName":
            assert matcher["options"] in names, f"{title}: override of {matcher['options']}"
        elif matcher["id"] == "byRegexp":
            assert any(re.search(matcher["options"], n) for n in names), f"{title}: {matcher}"


@pytest.mark.parametrize("span", sorted(RANGES))
@pytest.mark.parametrize("title", [p["title"] for p in PANELS])
async def test_every_panel_query_runs_and_returns_what_its_panel_draws(
    run: PipelineRun, title: str, span: str
) -> None:
    panel, at = _panel(title), _range(span)
    for chosen in await _selections(run.conninfo, at):
        names, found = await _query(run.conninfo, expand(panel["targets"][0]["rawSql"], chosen, at))
        _check_shape(panel, names, found, at)
        if span == "zoomed" and panel["type"] == "timeseries":
            times = {row[names.index("time")] for row in found}
            assert len(times) >= 2, f"{title}: one point per minute of windows"


def _all_features(kind: str) -> dict[str, Selected]:
    return {"window": Selected((kind,), multi=False), "feature": Selected(FEATURES, multi=True)}


@pytest.mark.parametrize("kind", ["10s", "20s"])
async def test_the_drift_counts_and_the_drifted_windows_are_the_records(
    run: PipelineRun, kind: str
) -> None:
    at, chosen = _range("30 days"), _all_features(kind)
    drift = [r for r in run.drift if r.window == kind]
    counts = await _query(
        run.conninfo,
        expand(_panel("Drifting windows per feature")["targets"][0]["rawSql"], chosen, at),
    )
    assert dict(counts[1]) == {
        name: sum(1 for r in drift if r.features and r.features[name].drifting) for name in FEATURES
    }
    names, found = await _query(
        run.conninfo, expand(_panel("Windows that drifted")["targets"][0]["rawSql"], chosen, at)
    )
    drifted = sorted(
        (r for r in drift if (r.prediction and r.prediction.drifting) or r.drifting_features),
        key=lambda r: r.start,
        reverse=True,
    )
    assert drifted, f"no {kind} window drifted"
    got = [dict(zip(names, row, strict=True)) for row in found]
    assert [(g["start"], g["drifting features"], g["prediction score"]) for g in got] == [
        (r.start, ", ".join(r.drifting_features or []), r.prediction and r.prediction.score)
        for r in drifted
    ]
