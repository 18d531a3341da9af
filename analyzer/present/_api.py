"""``faultlens.analyzer.open(db)``: the analysis object notebooks, the CLI and the dashboard use.

Example::

    import faultlens.analyzer as fa
    a = fa.open(".faultlens/faultlens.duckdb")
    inc = a.incidents()[0]
    a.candidates(inc.id)
"""

from __future__ import annotations

import json
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .._settings import DetectionSettings, TimeWindow
from ..analysis import _cost, _coupling
from ..analysis._contract import Candidate, Incident
from ..analysis._pipeline import IncidentPipeline, service_layouts
from ..facts._stored import StoredFacts, open_stored_facts
from ..facts._tables import FactTables, run_filter
from ..store._dialect import DUCKDB, BoundConnection, Dialect
from ..store._engines import analysis_connection, parse_db
from ..store._write import connect
from ._browse import find_logs, find_spans, trace_waterfall
from ._words import culprit_text

__all__ = [
    "Analysis",
    "Candidate",
    "Incident",
    "incidents_json",
    "incidents_schema",
    "open",
]


def open(  # noqa: A001 - the documented name: faultlens.analyzer.open(db)
    db: str | Path | duckdb.DuckDBPyConnection,
    *,
    read_only: bool = True,
    run: str | None = None,
    bucket_s: float = 5.0,
    window: TimeWindow | None = None,
) -> Analysis:
    """Open a store for analysis; ``run`` limits it to one ``faultlens.run``, ``window`` in time.

    ``db`` is a DuckDB file, or the OpenTelemetry Collector's ClickHouse tables:
    ``chdb:PATH`` / ``clickhouse://user:pass@host:port/database`` (docs/scale-out.md).
    """
    settings = DetectionSettings(bucket_s=bucket_s)
    if not isinstance(db, duckdb.DuckDBPyConnection) and not parse_db(db).is_duckdb:
        con, dialect = analysis_connection(db, read_only=read_only)
        return Analysis(con, run=run, dialect=dialect, settings=settings, window=window)
    con = db if isinstance(db, duckdb.DuckDBPyConnection) else connect(db, read_only=read_only)
    return Analysis(con, run=run, settings=settings, window=window)


def incidents_json(
    db: str | Path | Analysis,
    *,
    slo_ms: float | None = None,
    run: str | None = None,
    prices: _cost.Prices | None = None,
    window: TimeWindow | None = None,
) -> dict[str, Any]:
    """``{"incidents": [...]}`` as :func:`incidents_schema` describes it.

    Each incident also carries ``resource_cost``: its run's measured cost and the layout
    verdict of its scenario (null where the store holds no process metrics, or only one
    layout of the scenario)."""
    a = db if isinstance(db, Analysis) else open(db, run=run, window=window)
    incidents = a.incidents(slo_ms=slo_ms)
    costs = a.costs(prices=prices)
    verdicts = a.layout_verdicts(prices=prices, slo_ms=slo_ms)
    out = []
    for i in incidents:
        cost = costs.get(i.run)
        found = verdicts.get(cost.scenario) if cost is not None else None
        out.append(
            {
                **i.to_dict(),
                "resource_cost": {
                    "run": cost.to_dict() if cost is not None else None,
                    "layout_verdict": found.to_dict() if found is not None else None,
                },
            }
        )
    return {"incidents": out}


def incidents_schema() -> dict[str, Any]:
    """The JSON Schema of ``faultlens incidents --format json`` (shipped in the package)."""
    text = resources.files(__package__).joinpath("incidents.schema.json").read_text()
    return json.loads(text)


class Analysis:
    """Incidents, culprits, isolation time and blast radius over one store."""

    def __init__(
        self,
        con: Any,
        *,
        run: str | None = None,
        dialect: Dialect = DUCKDB,
        settings: DetectionSettings | None = None,
        window: TimeWindow | None = None,
    ) -> None:
        self.con = BoundConnection(con, dialect)
        self.d = dialect
        self.run = run
        self.settings = settings or DetectionSettings()
        self.window = window or TimeWindow()  # only data whose Timestamp is inside
        self._incidents: dict[float | None, list[Incident]] = {}

    # -- the fact tables every step reads --------------------------------------------
    @cached_property
    def _stored(self) -> StoredFacts | None:
        """The facts ingest stored, while they cover the store (a window derives its own)."""
        return None if self.window else open_stored_facts(self.con, self.d, run=self.run)

    @cached_property
    def _tables(self) -> FactTables:
        """The fact tables, stored or derived here (facts/_tables.py)."""
        return FactTables(self.con, self.d, run=self.run, stored=self._stored, window=self.window)

    @cached_property
    def _pipeline(self) -> IncidentPipeline:
        return IncidentPipeline(self._tables, self.settings)

    def _q(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    # -- listing ----------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """[run, layout, start_ns, end_ns, spans]: one row per ``faultlens.run`` ('' if none)."""
        if self._stored is not None:  # the same, from the stored facts (no map lookups)
            return self._q(
                """SELECT run, max(layout) AS layout, min(first_ts) AS start_ns,
                          max(last_ts) AS end_ns, CAST(sum(n_spans) AS BIGINT) AS spans
                   FROM fl_instances GROUP BY 1 ORDER BY start_ns"""
            )
        a = self.d.attr
        where, params = run_filter(self.d, self.run, self.window)
        return self._q(
            f"""SELECT coalesce({a("ResourceAttributes", "faultlens.run")}, '') AS run,
                       max(Layout) AS layout, min({self.d.epoch_ns("Timestamp")}) AS start_ns,
                       max({self.d.epoch_ns("Timestamp")}) AS end_ns, count(*) AS spans
                FROM otel_traces WHERE {where} GROUP BY 1 ORDER BY start_ns""",
            params,
        )

    def layouts(self) -> pd.DataFrame:
        """[service, layout, models, instances]; a service running several models is a monolith."""
        return service_layouts(self._tables)

    def timeseries(self, *, scope: str = "model", bucket_s: float | None = None) -> pd.DataFrame:
        """[run, bucket_start, scope, key, requests, errors, error_ratio, p95_ms]."""
        bns = int((bucket_s or self.settings.bucket_s) * 1e9)
        ts = self._tables.scope_series(bns)
        return ts[ts.scope == scope].reset_index(drop=True)

    # -- incidents --------------------------------------------------------------------
    def incidents(self, *, slo_ms: float | None = None) -> list[Incident]:
        """Every incident, oldest first, each fully analysed."""
        if slo_ms not in self._incidents:
            self._incidents[slo_ms] = self._pipeline.incidents(slo_ms)
        return self._incidents[slo_ms]

    def incidents_frame(self, *, slo_ms: float | None = None) -> pd.DataFrame:
        """One row per incident: [id, run, layout, onset, duration_s, culprit_service,
        culprit_model, fit_model_aware_s, fit_service_only_s, model_aware_isolates_model,
        service_only_isolates_model, blast_radius, share, collateral]. A view that does not
        isolate the model (the service-only view of a shared process) has its FIT as the
        time it named the process: not comparable with the other view's."""
        rows = []
        for i in self.incidents(slo_ms=slo_ms):
            iso = {v.view: v for v in i.isolation}
            rows.append(
                {
                    "id": i.id,
                    "run": i.run,
                    "layout": i.layout,
                    "onset": pd.Timestamp(i.onset_ns, unit="ns", tz="UTC"),
                    "duration_s": (i.end_ns - i.onset_ns) / 1e9,
                    "culprit_service": i.culprit.service,
                    "culprit_model": i.culprit.model,
                    "fit_model_aware_s": iso["model_aware"].seconds,
                    "fit_service_only_s": iso["service_only"].seconds,
                    "model_aware_isolates_model": iso["model_aware"].isolates_model,
                    "service_only_isolates_model": iso["service_only"].isolates_model,
                    "blast_radius": i.blast.requests,
                    "share": i.blast.share,
                    "collateral": i.blast.collateral,
                }
            )
        return pd.DataFrame(rows)

    def incident(self, incident_id: str, *, slo_ms: float | None = None) -> Incident:
        """The incident with this id; ``KeyError`` naming the known ids when none has it."""
        for i in self.incidents(slo_ms=slo_ms):
            if i.id == incident_id:
                return i
        known = ", ".join(i.id for i in self.incidents(slo_ms=slo_ms)) or "none"
        raise KeyError(f"no incident {incident_id!r} (known: {known})")

    def candidates(self, incident_id: str) -> pd.DataFrame:
        """[rank, service, model, version, score, evidence]."""
        cands = self.incident(incident_id).candidates
        return pd.DataFrame([c.to_dict() for c in cands])

    def blast_radius(self, incident_id: str) -> pd.DataFrame:
        """[dimension (endpoint|model|service), key, requests, share, collateral]."""
        return self.incident(incident_id).blast.breakdown.copy()

    def isolation(self, incident_id: str) -> pd.DataFrame:
        """[view (model_aware|service_only), seconds, suspects, evidence_spans, evidence_logs]."""
        return pd.DataFrame(
            [{"view": v.view, **v.to_dict()} for v in self.incident(incident_id).isolation]
        )

    # -- coupling ---------------------------------------------------------------------
    def update_coupling(self) -> pd.DataFrame:
        """Per model-version change: models restarted with it and downtime (s)."""
        return self._pipeline.update_coupling.copy()

    def library_coupling(self) -> pd.DataFrame:
        """Per process: runtime, framework set and the models that share them."""
        where, params = run_filter(self.d, self.run, self.window)
        return _coupling.library_coupling(self.con, self.d, run_filter=where, params=params)

    # -- browsing (present/_browse.py) ------------------------------------------------
    def spans(
        self,
        *,
        model: str | None = None,
        endpoint: str | None = None,
        status: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        min_duration_ms: float | None = None,
        limit: int = 500,
    ) -> pd.DataFrame:
        """Spans, newest first: [ts_ns, trace_id, span_id, parent_id, service, model, version,
        kind, name, endpoint, duration_ms, error, instance]."""
        return find_spans(
            self._tables,
            model=model,
            endpoint=endpoint,
            status=status,
            start_ns=start_ns,
            end_ns=end_ns,
            min_duration_ms=min_duration_ms,
            limit=limit,
        )

    def trace(self, trace_id: str) -> pd.DataFrame:
        """All spans of one trace in start order, with depth and start offset (ms)."""
        return trace_waterfall(self._tables, trace_id)

    def logs(
        self,
        *,
        trace_id: str | None = None,
        model: str | None = None,
        min_severity: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        service: str | None = None,
        limit: int = 500,
    ) -> pd.DataFrame:
        """Log records, newest first: [ts_ns, service, model, version, severity, severity_number,
        body, trace_id, span_id]."""
        return find_logs(
            self.con,
            self.d,
            run=self.run,
            trace_id=trace_id,
            model=model,
            min_severity=min_severity,
            start_ns=start_ns,
            end_ns=end_ns,
            service=service,
            limit=limit,
        )

    def error_logs(self, incident_id: str, *, limit: int = 200) -> pd.DataFrame:
        """Warnings and worse during the incident (from its baseline start: what led up to it)."""
        i = self.incident(incident_id)
        return self.logs(
            min_severity=13, start_ns=i.baseline_start_ns, end_ns=i.end_ns, limit=limit
        )

    # -- layouts side by side -----------------------------------------------------
    def contrast(self, other: Analysis | None = None) -> pd.DataFrame:
        """Metric rows; one column per layout: actual, and the monolith's per-model projection."""
        cols: dict[str, dict[str, Any]] = {}
        for a in (self, other):
            if a is None:
                continue
            incs = a.incidents()
            if not incs:
                continue
            i = max(incs, key=lambda x: x.blast.requests)
            cols[f"{i.layout} (actual)"] = _contrast_column(i)
            if i.counterfactual is not None:
                cols["per-model (counterfactual)"] = {
                    "blast radius (requests)": i.counterfactual["requests"],
                    "blast radius (share)": i.counterfactual["share"],
                    "collateral (requests)": 0,
                }
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in cols.items()})
        frame.index.name = "metric"
        return frame

    # -- resource cost (analysis/_cost.py) --------------------------------------------
    def costs(self, *, prices: _cost.Prices | None = None) -> dict[str, _cost.RunCost]:
        """Run -> what its processes used, from their OTLP metrics (faultlens' metrics
        tables on DuckDB, the Collector exporter's on chDB or a server)."""
        costs = _cost.run_costs(self._q, self.d, prices=prices)
        return (
            costs if self.run is None else {self.run: costs[self.run]} if self.run in costs else {}
        )

    def layout_verdicts(
        self, *, prices: _cost.Prices | None = None, slo_ms: float | None = None
    ) -> dict[str, _cost.Verdict]:
        """Scenario -> both sides of the layout trade-off (cost and incident), for each
        scenario whose monolith and per-model runs are both in the store."""
        whole = self if self.run is None else self._sibling(None)
        costs = whole.costs(prices=prices)
        if self.run is not None:
            mine = costs.get(self.run)
            costs = {r: c for r, c in costs.items() if mine and c.scenario == mine.scenario}
        if self.run is None:
            incidents = self.incidents(slo_ms=slo_ms)
        else:  # the sibling run's incidents too: each run analysed on its own, as here
            incidents = [i for run in costs for i in self._sibling(run).incidents(slo_ms=slo_ms)]
            if self.d is not DUCKDB:  # the siblings replaced this one's session tables:
                for name in ("_stored", "_tables", "_pipeline"):  # derived again when read
                    self.__dict__.pop(name, None)
        return _cost.layout_verdicts(costs, incidents)

    def _sibling(self, run: str | None) -> Analysis:
        """Another analysis of this store: its facts are temp tables of its connection, so
        on DuckDB it gets a cursor of its own instead of replacing this one's (ClickHouse
        shares the session: ``layout_verdicts`` derives this one's facts again)."""
        raw = self.con.raw
        con = raw.cursor() if self.d is DUCKDB else raw
        return Analysis(con, run=run, dialect=self.d, settings=self.settings)

    # -- figures ------------------------------------------------------------------
    def fig_timeseries(
        self, *, scope: str = "model", metric: str = "error_ratio", bucket_s: float | None = None
    ) -> Any:
        """A plotly figure: ``metric`` (error_ratio, p95_ms, requests) of every ``scope``
        key (model, endpoint, service) over time, the incidents shaded."""
        from . import _figures as _figures

        return _figures.timeseries(
            self.timeseries(scope=scope, bucket_s=bucket_s),
            metric=metric,
            incidents=self.incidents(),
        )

    def fig_incident_timeline(self, incident_id: str) -> Any:
        """A plotly figure of one incident: its scopes' signals around it, onset, both
        views' isolation and end marked."""
        from . import _figures as _figures

        i = self.incident(incident_id)
        ts = self._tables.scope_series(self.settings.bucket_ns)  # every scope: the departed
        return _figures.incident_timeline(i, ts[ts.run == i.run])

    def fig_blast_radius(self, incident_id: str) -> Any:
        """A plotly bar chart of one incident's affected requests by endpoint, model and
        service, the collateral apart."""
        from . import _figures as _figures

        return _figures.blast_radius(self.incident(incident_id))

    def fig_waterfall(self, trace_id: str) -> Any:
        """A plotly waterfall of one trace's spans, coloured by model."""
        from . import _figures as _figures

        return _figures.waterfall(self.trace(trace_id), trace_id=trace_id)


def _contrast_column(i: Incident) -> dict[str, Any]:
    iso = {v.view: v for v in i.isolation}
    return {
        "culprit": culprit_text(i.to_dict()),
        "FIT, model-aware (s)": iso["model_aware"].seconds,
        "FIT, service-only (s)": iso["service_only"].seconds,
        # False: that view's FIT is when it named a shared process, not the model.
        "model isolated, model-aware": iso["model_aware"].isolates_model,
        "model isolated, service-only": iso["service_only"].isolates_model,
        "suspects, model-aware": iso["model_aware"].suspects,
        "suspects, service-only": iso["service_only"].suspects,
        "evidence to read, model-aware (spans+logs)": iso["model_aware"].evidence_spans
        + iso["model_aware"].evidence_logs,
        "evidence to read, service-only (spans+logs)": iso["service_only"].evidence_spans
        + iso["service_only"].evidence_logs,
        "blast radius (requests)": i.blast.requests,
        "blast radius (share)": i.blast.share,
        "collateral (requests)": i.blast.collateral,
        "models restarted per update": max(
            (c.get("restarted", 0) for c in i.update_coupling), default=None
        ),
    }
