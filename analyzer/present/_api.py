"""``faultlens.analyzer.open(db)``: the analysis object notebooks, the CLI and the dashboard use.

Example::

    import faultlens.analyzer as fa
    a = fa.open(".faultlens/faultlens.duckdb")
    inc = a.incidents()[0]
    a.candidates(inc.id)
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ..analysis import _coupling as _coupling
from ..analysis import _evidence as _evidence
from ..analysis import _impact as _impact
from ..analysis import _isolation as _isolation
from ..analysis import _localize as _localize
from ..facts import _sql as _detect
from ..facts import _stored as _stored_facts
from ..store._dialect import DUCKDB, BoundConnection, Dialect
from ..store._engines import analysis_connection, parse_db
from ..store._write import connect

__all__ = ["Analysis", "Candidate", "Incident", "incident_report", "incidents_json", "open"]

BASELINE_MAX_NS = 10 * 60 * 1_000_000_000


@dataclass(frozen=True)
class Candidate:
    """One (service, model) suspect with its score and readable evidence."""

    rank: int
    service: str
    model: str | None
    version: str | None
    score: float
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "service": self.service,
            "model": self.model,
            "version": self.version,
            "score": self.score,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Incident:
    """One incident: when, who, how long to see it, how far it spread."""

    id: str
    run: str
    layout: str
    onset_ns: int
    end_ns: int
    baseline_start_ns: int
    scopes: tuple[str, ...]
    culprit: Candidate
    candidates: tuple[Candidate, ...]
    isolation: tuple[_isolation.IsolationView, ...]
    blast: _impact.BlastRadius = field(repr=False)
    counterfactual: dict[str, Any] | None
    update_coupling: tuple[dict[str, Any], ...]
    suspect_models: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The shape of ``faultlens incidents --format json`` (incidents.schema.json)."""
        by = self.blast.breakdown

        def counts(dim: str) -> dict[str, int]:
            rows = by[by.dimension == dim]
            return {str(k): int(v) for k, v in zip(rows.key, rows.requests, strict=True)}

        return {
            "id": self.id,
            "run": self.run,
            "layout": self.layout,
            "onset_ns": self.onset_ns,
            "end_ns": self.end_ns,
            "scopes": list(self.scopes),
            "culprit": {
                "service": self.culprit.service,
                "model": self.culprit.model,
                "version": self.culprit.version,
            },
            "suspect_models": list(self.suspect_models),
            "candidates": [c.to_dict() for c in self.candidates],
            "fault_isolation": {v.view: v.to_dict() for v in self.isolation},
            "blast_radius": {
                "requests": self.blast.requests,
                "share": self.blast.share,
                "total_requests": self.blast.total,
                "collateral": self.blast.collateral,
                "endpoints": counts("endpoint"),
                "models": counts("model"),
                "services": counts("service"),
            },
            "counterfactual_per_model": self.counterfactual,
            "update_coupling": list(self.update_coupling),
        }


def open(  # noqa: A001 - the documented name: faultlens.analyzer.open(db)
    db: str | Path | duckdb.DuckDBPyConnection,
    *,
    read_only: bool = True,
    run: str | None = None,
    bucket_s: float = 5.0,
) -> Analysis:
    """Open a store for analysis; ``run`` limits it to one ``faultlens.run``.

    ``db`` is a DuckDB file, or the OpenTelemetry Collector's ClickHouse tables:
    ``chdb:PATH`` / ``clickhouse://user:pass@host:port/database`` (docs/scale-out.md).
    """
    settings = _detect.DetectionSettings(bucket_s=bucket_s)
    if not isinstance(db, duckdb.DuckDBPyConnection) and parse_db(db).kind != "duckdb":
        con, dialect = analysis_connection(db, read_only=read_only)
        return Analysis(con, run=run, dialect=dialect, settings=settings)
    con = db if isinstance(db, duckdb.DuckDBPyConnection) else connect(db, read_only=read_only)
    return Analysis(con, run=run, settings=settings)


def incidents_json(
    db: str | Path, *, slo_ms: float | None = None, run: str | None = None
) -> dict[str, Any]:
    """``{"incidents": [...]}`` as incidents.schema.json describes it."""
    return {"incidents": [i.to_dict() for i in open(db, run=run).incidents(slo_ms=slo_ms)]}


class Analysis:
    """Incidents, culprits, isolation time and blast radius over one store."""

    def __init__(
        self,
        con: Any,
        *,
        run: str | None = None,
        dialect: Dialect = DUCKDB,
        settings: _detect.DetectionSettings | None = None,
    ) -> None:
        self.con = BoundConnection(con, dialect)
        self.d = dialect
        self.run = run
        self.settings = settings or _detect.DetectionSettings()
        self._incidents: dict[float | None, list[Incident]] = {}
        self._run_bounds: dict[str, tuple[int, int]] = {}  # first and last request per run
        self._series: dict[int, pd.DataFrame] = {}

    # -- shared state -------------------------------------------------------------
    @property
    def _run_filter(self) -> tuple[str, dict[str, Any]]:
        if self.run is None:
            return "1 = 1", {}
        expr = f"coalesce({self.d.attr('ResourceAttributes', 'faultlens.run')}, '')"
        return f"{expr} = {self.d.param('run')}", {"run": self.run}

    @cached_property
    def _stored(self) -> _stored_facts.StoredFacts | None:
        """The facts ingest stored, while they still cover the store (analyzer/_facts.py)."""
        return _stored_facts.use_stored_facts(self.con, self.d, run=self.run)

    @cached_property
    def _facts(self) -> bool:
        if self._stored is None:
            where, params = self._run_filter
            _detect.build_facts(self.con, self.d, run_filter=where, params=params)
        return True

    def _scope_series(self, bucket_ns: int) -> pd.DataFrame:
        """Every scope's time series (read-only: shared by callers), computed once per bucket."""
        assert self._facts
        if bucket_ns not in self._series:
            stored = self._stored is not None and self._stored.series_bucket_ns == bucket_ns
            self._series[bucket_ns] = _detect.scope_timeseries(
                self.con, self.d, bucket_ns=bucket_ns, stored="fl_scope_series" if stored else None
            )
        return self._series[bucket_ns]

    @cached_property
    def _span_buckets_stored(self) -> bool:
        """Make ``fl_span_buckets`` hold the span sums at the analysis's bucket: the stored
        ones (every cursor reads them) when they are at that bucket (True), else derived
        here into a temporary table of this connection (False)."""
        assert self._facts
        bucket_ns = self.settings.bucket_ns
        if self._stored is not None and self._stored.series_bucket_ns == bucket_ns:
            return True
        if self._stored is not None:
            self.con.execute("DROP VIEW IF EXISTS fl_span_buckets")
        sql = _detect.span_buckets_sql(self.d, bucket_ns=bucket_ns)
        self.con.execute(self.d.temp_table("fl_span_buckets", sql))
        return False

    @cached_property
    def _log_sums(self) -> _evidence.LogSums:
        """The store's log records per run, bucket, service and model, read once."""
        assert self._facts
        where, params = self._run_filter
        sql = _detect.log_buckets_sql(self.d, bucket_ns=self.settings.bucket_ns, run_filter=where)
        return _evidence.log_sums(self._q(sql, params))

    @cached_property
    def _run_facts(self) -> tuple[dict[str, _evidence.RunFacts], dict[str, int]]:
        """Each run's versions, restarts and candidates, and each service's model count."""
        assert self._facts
        self._span_buckets_stored  # noqa: B018 - the candidates are read from fl_span_buckets
        return _evidence.run_facts(self.con)

    def _q(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    # -- listing ------------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """[run, layout, start_ns, end_ns, spans]: one row per ``faultlens.run`` ('' if none)."""
        if self._stored is not None:  # the same, from the stored facts (no map lookups)
            return self._q(
                """SELECT run, max(layout) AS layout, min(first_ts) AS start_ns,
                          max(last_ts) AS end_ns, CAST(sum(n_spans) AS BIGINT) AS spans
                   FROM fl_instances GROUP BY 1 ORDER BY start_ns"""
            )
        a = self.d.attr
        where, params = self._run_filter
        return self._q(
            f"""SELECT coalesce({a("ResourceAttributes", "faultlens.run")}, '') AS run,
                       max(Layout) AS layout, min({self.d.epoch_ns("Timestamp")}) AS start_ns,
                       max({self.d.epoch_ns("Timestamp")}) AS end_ns, count(*) AS spans
                FROM otel_traces WHERE {where} GROUP BY 1 ORDER BY start_ns""",
            params,
        )

    def layouts(self) -> pd.DataFrame:
        """[service, layout, models, instances]; a service running several models is a monolith."""
        assert self._facts
        f = self._q(
            """SELECT service, max(layout) AS declared, count(DISTINCT instance) AS instances
               FROM fl_instances GROUP BY service"""
        )
        m = self._q("SELECT DISTINCT service, model FROM fl_instances WHERE model IS NOT NULL")
        models = m.groupby("service").model.agg(lambda s: sorted(s)).reindex(f.service)
        f["models"] = [x if isinstance(x, list) else [] for x in models]
        inferred = np.where(f.models.map(len) > 1, "monolith", "per-model")
        f["layout"] = np.where(f.declared.fillna("") != "", f.declared, inferred)
        return f[["service", "layout", "models", "instances"]].sort_values(
            "service", ignore_index=True
        )

    def timeseries(self, *, scope: str = "model", bucket_s: float | None = None) -> pd.DataFrame:
        """[run, bucket_start, scope, key, requests, errors, error_ratio, p95_ms]."""
        assert self._facts
        bns = int((bucket_s or self.settings.bucket_s) * 1e9)
        ts = self._scope_series(bns)
        return ts[ts.scope == scope].reset_index(drop=True)

    # -- incidents ----------------------------------------------------------------
    def incidents(self, *, slo_ms: float | None = None) -> list[Incident]:
        """Every incident, oldest first, each fully analysed."""
        if slo_ms not in self._incidents:
            self._incidents[slo_ms] = self._detect_and_analyse(slo_ms)
        return self._incidents[slo_ms]

    def incidents_frame(self, *, slo_ms: float | None = None) -> pd.DataFrame:
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
                    "blast_radius": i.blast.requests,
                    "share": i.blast.share,
                    "collateral": i.blast.collateral,
                }
            )
        return pd.DataFrame(rows)

    def incident(self, incident_id: str, *, slo_ms: float | None = None) -> Incident:
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

    def _detect_and_analyse(self, slo_ms: float | None) -> list[Incident]:
        assert self._facts
        st = self.settings
        series = self._scope_series(st.bucket_ns)
        ext = self._q("SELECT run, min(ts) AS lo, max(ts) AS hi FROM fl_requests GROUP BY run")
        bounds = {r: (int(lo), int(hi)) for r, lo, hi in ext.itertuples(index=False)}
        self._run_bounds = bounds
        windows = _detect.abnormal_windows(series, st, bounds=bounds)
        groups = _detect.merge_windows(
            windows,
            gap_ns=st.merge_gap_buckets * st.bucket_ns,
            same_scope_gap_ns=st.same_scope_gap_buckets * st.bucket_ns,
        )
        run_start = ext.set_index("run").lo
        jobs = []
        prev_end: dict[str, int] = {}
        for g in groups:
            run = g[0].run
            onset = min(w.start_ns for w in g)
            end = max(w.end_ns for w in g)
            base_start = max(int(run_start[run]), prev_end.get(run, 0), onset - BASELINE_MAX_NS)
            prev_end[run] = end
            if onset - base_start < (st.min_baseline_buckets - 1) * st.bucket_ns:
                continue
            jobs.append((run, g, base_start, onset, end, slo_ms))
        self._span_buckets_stored, self._log_sums, self._run_facts  # noqa: B018 - before workers
        cursors = self._cursors(len(jobs))
        if len(cursors) < 2:
            return [self._analyse(self.con, *job) for job in jobs]
        # Incidents are independent: each worker analyses every n-th one on its own cursor,
        # so one's SQL runs while another's Python scores (DuckDB frees the GIL).
        self._svc_models, self._versions_of, self._update_coupling, self._run_layouts  # noqa: B018
        n = len(cursors)

        def work(k: int) -> list[Incident]:
            return [self._analyse(cursors[k], *job) for job in jobs[k::n]]

        try:
            with ThreadPoolExecutor(n) as pool:
                parts = list(pool.map(work, range(n)))
        finally:
            for cur in cursors:
                cur.raw.close()
        return [parts[i % n][i // n] for i in range(len(jobs))]

    def _cursors(self, jobs: int) -> builtins.list[BoundConnection]:
        """Extra DuckDB connections over the stored facts for parallel incident analysis;
        none when the facts or the span sums were derived here (temporary tables are per
        connection)."""
        workers = min(jobs, os.cpu_count() or 1, 4)
        if (
            workers < 2
            or self._stored is None
            or not self._span_buckets_stored
            or not hasattr(self.con.raw, "cursor")
        ):
            return []
        cursors = [BoundConnection(self.con.raw.cursor(), self.d) for _ in range(workers)]
        for cur in cursors:
            _stored_facts.use_stored_facts(cur, self.d, run=self.run)
        return cursors

    def _analyse(
        self,
        con: BoundConnection,
        run: str,
        g: list[_detect.Window],
        base_start: int,
        onset: int,
        end: int,
        slo_ms: float | None,
    ) -> Incident:
        bns = self.settings.bucket_ns
        kw = dict(run=run, base_start=base_start, onset=onset, end=end, bucket_ns=bns)
        ranked, sigs = {}, {}
        runs, n_models = self._run_facts
        evs = _evidence.collect_views(
            con,
            self.d,
            slo_ms=slo_ms,
            log_buckets=self._log_sums,
            runs=runs,
            n_models=n_models,
            **kw,
        )
        for view, ev in evs.items():
            sigs[view] = _localize.score_matrix(ev)
            ranked[view] = _localize.ranking(ev, sigs[view], len(ev.buckets) - 1)
        top = ranked["model_aware"].iloc[0]
        service = str(top.service)
        model = top.model if isinstance(top.model, str) else None
        svc_models = self._svc_models.get(service, [])
        summary = _localize.summarize(evs["model_aware"])
        candidates = tuple(
            self._candidate(evs["model_aware"], r, summary)
            for r in ranked["model_aware"].itertuples()
        )
        iso = []
        volumes: dict[tuple, tuple[int, int]] = {}
        for view in _evidence.VIEWS:
            # Without the model, absence may still leave only some of the process's models.
            left = _localize.left_by_absence(evs[view], service) if model is None else ()
            seconds, n_suspects = _isolation.isolation_replay(
                evs[view], sigs[view], service=service, model=model, left=left
            )
            narrow = model if view == "model_aware" and len(svc_models) > 1 else None
            # The same failure domain in both views (a per-model service) is counted once.
            if (narrow, left) not in volumes:
                volumes[narrow, left] = _isolation.evidence_volume(
                    con,
                    self.d,
                    run=run,
                    onset=onset,
                    end=end,
                    service=service,
                    model=narrow,
                    logs=self._log_sums,
                    left=left,
                )
            spans, logs = volumes[narrow, left]
            iso.append(_isolation.IsolationView(view, seconds, n_suspects, spans, logs))
        # One bucket either side: the onset bucket is the first judged abnormal, so the
        # fault began inside the bucket before it; excess over baseline keeps this honest.
        blast = _impact.blast_radius(
            con,
            self.d,
            run=run,
            base_start=base_start,
            onset=max(onset - bns, base_start + bns),
            end=end + bns,
            # Collateral: requests that never touched the culprit's model, or its service
            # when it runs none; unknown when the model of a shared process is.
            collateral_of=("model", model)
            if model is not None
            else ("service", service)
            if len(svc_models) <= 1
            else None,
            slo_ms=slo_ms,
            extent=self._run_bounds.get(run),
        )
        layout = self._run_layouts.get(run, "per-model")
        coupling = self._update_coupling
        near = coupling[
            (coupling.run == run)
            & (coupling.changed_ns >= onset - _localize.LOOKBACK_NS)
            & (coupling.changed_ns < end)
        ]
        stamp = dt.datetime.fromtimestamp(onset / 1e9, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return Incident(
            id=f"{(run or 'store').replace('/', '-')}-{stamp}",
            run=run,
            layout=layout,
            onset_ns=int(onset),
            end_ns=int(end),
            baseline_start_ns=int(base_start),
            scopes=tuple(sorted({f"{w.scope}:{w.key} ({w.signal})" for w in g})),
            culprit=candidates[0],
            candidates=candidates,
            isolation=tuple(iso),
            blast=blast,
            counterfactual=_impact.counterfactual_per_model(
                blast, monolith=layout == "monolith", shared_process=len(svc_models) > 1
            ),
            update_coupling=tuple(
                {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                for row in near.to_dict("records")
            ),
            suspect_models=tuple(svc_models) if model is None and len(svc_models) > 1 else (),
        )

    @cached_property
    def _versions(self) -> pd.DataFrame:
        assert self._facts
        return self._q(
            """SELECT service, model, version, min(first_ts) AS first_ns, max(last_ts) AS last_ns
               FROM fl_instances WHERE model IS NOT NULL AND version IS NOT NULL
               GROUP BY service, model, version"""
        )

    @cached_property
    def _run_layouts(self) -> dict[str, str]:
        """Per run: monolith when it holds a process serving several models (or says so)."""
        f = self._q(
            """SELECT run, max(layout) AS declared, max(n) AS most FROM (
                   SELECT run, service, max(layout) AS layout, count(DISTINCT model) AS n
                   FROM fl_instances GROUP BY run, service)
               GROUP BY run"""
        )
        out = {}
        for run, declared, most in zip(f.run, f.declared, f.most, strict=True):
            inferred = "monolith" if int(most or 0) > 1 else "per-model"
            out[str(run)] = declared if isinstance(declared, str) and declared else inferred
        return out

    @cached_property
    def _svc_models(self) -> dict[str, builtins.list[str]]:
        lay = self.layouts()
        return dict(zip(lay.service, lay.models, strict=True))

    @cached_property
    def _versions_of(self) -> dict[tuple[str, str], builtins.list[tuple[int, int, str]]]:
        """(service, model) -> its versions as (first_ns, last_ns, version), oldest first."""
        out: dict[tuple[str, str], builtins.list[tuple[int, int, str]]] = {}
        v = self._versions.sort_values(["first_ns", "version"], kind="stable")
        for s, m, ver, first, last in zip(
            v.service, v.model, v.version, v.first_ns, v.last_ns, strict=True
        ):
            out.setdefault((s, m), []).append((int(first), int(last), str(ver)))
        return out

    def _candidate(self, ev: _evidence.Evidence, r: Any, summary: _localize.Summary) -> Candidate:
        model = r.model if isinstance(r.model, str) else None
        v = self._versions_of.get((r.service, model), []) if model is not None else []
        # The newest version that was live during the incident.
        live = [x for x in v if x[0] < ev.buckets[-1] + ev.bucket_ns and x[1] >= ev.onset_ns]
        v = live or v
        version = v[-1][2] if v else None
        evidence = _localize.describe(
            ev, r, svc_models=self._svc_models.get(r.service, []), summary=summary
        )
        return Candidate(int(r.rank), str(r.service), model, version, float(r.score), evidence)

    # -- coupling -----------------------------------------------------------------
    def update_coupling(self) -> pd.DataFrame:
        """Per model-version change: models restarted with it and downtime (s)."""
        return self._update_coupling.copy()

    @cached_property
    def _update_coupling(self) -> pd.DataFrame:
        assert self._facts
        return _coupling.update_coupling(self.con, self.d)

    def library_coupling(self) -> pd.DataFrame:
        """Per process: runtime, framework set and the models that share them."""
        where, params = self._run_filter
        return _coupling.library_coupling(self.con, self.d, run_filter=where, params=params)

    # -- browsing -----------------------------------------------------------------
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
        assert self._facts
        p = self.d.param
        conds = ["1 = 1"]
        params: dict[str, Any] = {"limit": int(limit)}
        for key, value, cond in (
            ("model", model, f"model = {p('model')}"),
            ("endpoint", endpoint, f"route = {p('endpoint')}"),
            ("start_ns", start_ns, f"ts >= {p('start_ns', 'Int64')}"),
            ("end_ns", end_ns, f"ts < {p('end_ns', 'Int64')}"),
            (
                "min_ns",
                None if min_duration_ms is None else int(min_duration_ms * 1e6),
                f"dur >= {p('min_ns', 'Int64')}",
            ),
        ):
            if value is not None:
                conds.append(cond)
                params[key] = value
        if status is not None:
            conds.append(
                "is_err = 1" if status.lower() in ("error", "status_code_error") else "is_err = 0"
            )
        return self._q(
            f"""SELECT ts AS ts_ns, trace_id, span_id, parent_id, service, model, version, kind,
                       name, route AS endpoint, dur / 1e6 AS duration_ms, is_err = 1 AS error,
                       instance
                FROM fl_spans WHERE {" AND ".join(conds)}
                ORDER BY ts DESC LIMIT {p("limit", "UInt64")}""",
            params,
        )

    def trace(self, trace_id: str) -> pd.DataFrame:
        """All spans of one trace in start order, with depth and start offset (ms)."""
        assert self._facts
        f = self._q(
            f"""SELECT ts AS ts_ns, span_id, parent_id, service, model, version, kind, name,
                       dur / 1e6 AS duration_ms, is_err = 1 AS error
                FROM fl_spans WHERE trace_id = {self.d.param("trace_id")} ORDER BY ts""",
            {"trace_id": trace_id.lower()},
        )
        if f.empty:
            return f.assign(depth=[], offset_ms=[])
        parent = dict(zip(f.span_id, f.parent_id, strict=True))

        def depth(s: str) -> int:
            n = 0
            while parent.get(s) in parent and n < 64:
                s, n = parent[s], n + 1
            return n

        f["depth"] = f.span_id.map(depth)
        f["offset_ms"] = (f.ts_ns - f.ts_ns.min()) / 1e6
        return f

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
        p, a = self.d.param, self.d.attr
        where, params = self._run_filter
        conds = [where]
        params = {**params, "limit": int(limit)}
        ts = self.d.epoch_ns("Timestamp")
        for key, value, cond in (
            ("trace_id", trace_id, f"TraceId = {p('trace_id')}"),
            ("model", model, f"ModelName = {p('model')}"),
            ("service", service, f"ServiceName = {p('service')}"),
            ("min_severity", min_severity, f"SeverityNumber >= {p('min_severity', 'Int64')}"),
            ("start_ns", start_ns, f"{ts} >= {p('start_ns', 'Int64')}"),
            ("end_ns", end_ns, f"{ts} < {p('end_ns', 'Int64')}"),
        ):
            if value is not None:
                conds.append(cond)
                params[key] = value
        del a
        return self._q(
            f"""SELECT {ts} AS ts_ns, ServiceName AS service, nullif(ModelName, '') AS model,
                       nullif(ModelVersion, '') AS version, SeverityText AS severity,
                       SeverityNumber AS severity_number, Body AS body, TraceId AS trace_id,
                       SpanId AS span_id
                FROM otel_logs WHERE {" AND ".join(conds)}
                ORDER BY Timestamp DESC LIMIT {p("limit", "UInt64")}""",
            params,
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

    # -- figures ------------------------------------------------------------------
    def fig_timeseries(
        self, *, scope: str = "model", metric: str = "error_ratio", bucket_s: float | None = None
    ) -> Any:
        from . import _figures as _figures

        return _figures.timeseries(
            self.timeseries(scope=scope, bucket_s=bucket_s),
            metric=metric,
            incidents=self.incidents(),
        )

    def fig_incident_timeline(self, incident_id: str) -> Any:
        from . import _figures as _figures

        i = self.incident(incident_id)
        ts = self.timeseries(scope="endpoint")
        return _figures.incident_timeline(i, ts[ts.run == i.run])

    def fig_blast_radius(self, incident_id: str) -> Any:
        from . import _figures as _figures

        return _figures.blast_radius(self.incident(incident_id))

    def fig_waterfall(self, trace_id: str) -> Any:
        from . import _figures as _figures

        return _figures.waterfall(self.trace(trace_id), trace_id=trace_id)


def _contrast_column(i: Incident) -> dict[str, Any]:
    iso = {v.view: v for v in i.isolation}
    return {
        "culprit": f"{i.culprit.service} / {i.culprit.model or '(model unknown)'}",
        "FIT, model-aware (s)": iso["model_aware"].seconds,
        "FIT, service-only (s)": iso["service_only"].seconds,
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


def incident_report(
    db: str | Path, incident_id: str, *, fmt: str = "md", slo_ms: float | None = None
) -> str:
    """A post-mortem of one incident: Markdown, or self-contained HTML with plotly charts."""
    a = open(db)
    # The id starts with its run: analyse only that run.
    runs = [
        r for r in a.runs().run if incident_id.startswith(f"{(r or 'store').replace('/', '-')}-")
    ]
    if len(runs) == 1:
        a = Analysis(a.con.raw, run=runs[0] or None, settings=a.settings)
    i = a.incident(incident_id, slo_ms=slo_ms)
    d = i.to_dict()
    when = lambda ns: dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()  # noqa: E731
    lines = [
        f"# Incident {i.id}",
        "",
        f"- Run: `{i.run or '(whole store)'}`, layout: {i.layout}",
        f"- Window: {when(i.onset_ns)} to {when(i.end_ns)} ({(i.end_ns - i.onset_ns) / 1e9:.0f} s)",
        f"- Culprit: **{i.culprit.service} / {i.culprit.model or 'model unknown'}**"
        + (f" (suspects: {', '.join(i.suspect_models)})" if i.suspect_models else ""),
        f"- Blast radius: {i.blast.requests} requests ({i.blast.share:.1%} of traffic), "
        f"collateral: {i.blast.collateral if i.blast.collateral is not None else 'n/a'}",
        f"- Per-model counterfactual: {d['counterfactual_per_model'] or 'n/a'}",
        "",
        "## Fault isolation",
        "",
        "| view | FIT (s) | suspects | spans to read | logs to read |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {v.view} | {v.seconds} | {v.suspects} | {v.evidence_spans} | {v.evidence_logs} |"
            for v in i.isolation
        ),
        "",
        "## Candidates",
        "",
        *(
            f"{c.rank}. {c.service} / {c.model or '-'} (score {c.score:.2f}): "
            + "; ".join(c.evidence)
            for c in i.candidates[:8]
        ),
        "",
        "## Scopes that departed from baseline",
        "",
        *(f"- {s}" for s in i.scopes),
    ]
    if i.update_coupling:
        lines += ["", "## Update coupling", ""]
        lines += [
            f"- {u['service']}/{u['model']} {u['old_version']} -> {u['new_version']}: "
            f"{u['restarted']} models restarted, downtime {u['downtime_s']} s"
            for u in i.update_coupling
        ]
    md = "\n".join(lines) + "\n"
    if fmt == "md":
        return md
    if fmt != "html":
        raise ValueError(f"--format {fmt}: expected md or html")
    import html as _html

    figs = [a.fig_incident_timeline(incident_id), a.fig_blast_radius(incident_id)]
    body = "".join(
        f.to_html(full_html=False, include_plotlyjs="inline" if n == 0 else False)
        for n, f in enumerate(figs)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(i.id)}</title>"
        f"</head><body><pre>{_html.escape(md)}</pre>{body}</body></html>"
    )
