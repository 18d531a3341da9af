"""The incident pipeline: detect abnormal windows, then analyse each incident.

DESIGN (docs/design.md, "Incidents"): windows of abnormal buckets merge into incidents;
each incident's evidence is gathered in both views, candidates are ranked, the
fault-isolation time is replayed, the blast radius, collateral and the per-model
counterfactual are measured, and model-version changes near the onset are attached.
Every step reads the fact tables through the :class:`~..facts._tables.FactTables` handle.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .._settings import DetectionSettings
from ..facts._sql import log_buckets_sql
from ..facts._tables import FactTables
from ..store._dialect import BoundConnection
from . import _coupling, _describe, _detect, _evidence, _impact, _isolation, _localize
from ._contract import Candidate, Incident, incident_id

__all__ = ["BASELINE_MAX_NS", "IncidentPipeline", "service_layouts"]

BASELINE_MAX_NS = 10 * 60 * 1_000_000_000


def service_models(tables: FactTables) -> dict[str, list[str]]:
    """Each service and the models it runs (sorted; empty for a service that runs none)."""
    con = tables.con
    services = con.execute("SELECT DISTINCT service FROM fl_instances").df().service
    m = con.execute("SELECT DISTINCT service, model FROM fl_instances WHERE model IS NOT NULL").df()
    models = m.groupby("service").model.agg(lambda s: sorted(s))
    return {str(s): list(models.get(s, [])) for s in services}


def service_layouts(tables: FactTables) -> pd.DataFrame:
    """[service, layout, models, instances]. A service running models: its run's declared
    layout, else monolith when it runs several, per-model when one. A service running none
    says so: ``gateway`` when it serves requests and calls a service that runs models,
    else ``no model`` (a load generator, a feature store)."""
    con = tables.con
    f = con.execute(
        """SELECT service, max(layout) AS declared, count(DISTINCT instance) AS instances
           FROM fl_instances GROUP BY service"""
    ).df()
    models = service_models(tables)
    f["models"] = [models.get(s, []) for s in f.service]
    inferred = np.where(f.models.map(len) > 1, "monolith", "per-model")
    layout = np.where(f.declared.fillna("") != "", f.declared, inferred)
    gateways = _gateways(tables) if f.models.map(len).eq(0).any() else set()
    f["layout"] = [
        lay if ms else ("gateway" if s in gateways else "no model")
        for s, ms, lay in zip(f.service, f.models, layout, strict=True)
    ]
    return f[["service", "layout", "models", "instances"]].sort_values("service", ignore_index=True)


def _gateways(tables: FactTables) -> set[str]:
    """Services running no model that serve requests and call a service that runs models
    (a span of theirs is the parent of one of its server spans)."""
    rows = tables.con.execute(
        """WITH modelled AS (SELECT DISTINCT service FROM fl_instances WHERE model IS NOT NULL),
                serving AS (SELECT DISTINCT service FROM fl_spans WHERE kind = 'server')
           SELECT DISTINCT p.service
           FROM fl_spans c
           JOIN fl_spans p
             ON p.run = c.run AND p.trace_id = c.trace_id AND p.span_id = c.parent_id
           WHERE c.kind = 'server' AND c.service IN (SELECT service FROM modelled)
             AND p.service NOT IN (SELECT service FROM modelled)
             AND p.service IN (SELECT service FROM serving)"""
    ).fetchall()
    return {str(r[0]) for r in rows}


class IncidentPipeline:
    """Incidents of the store (or run) behind ``tables``, each fully analysed."""

    def __init__(self, tables: FactTables, settings: DetectionSettings) -> None:
        self.t = tables
        self.con, self.d = tables.con, tables.d
        self.settings = settings
        self._run_bounds: dict[str, tuple[int, int]] = {}  # first and last request per run

    def _q(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params).df()

    # -- inputs read once for every incident ----------------------------------------
    @cached_property
    def log_sums(self) -> _evidence.LogSums:
        """The store's log records per run, bucket, service and model, read once."""
        where, params = self.t.where()
        sql = log_buckets_sql(self.d, bucket_ns=self.settings.bucket_ns, run_filter=where)
        return _evidence.log_sums(self._q(sql, params))

    @cached_property
    def run_facts(self) -> tuple[dict[str, _evidence.RunFacts], dict[str, int]]:
        """Each run's versions, restarts and candidates, and each service's model count."""
        self.t.span_buckets(self.settings.bucket_ns)  # the candidates come from fl_span_buckets
        return _evidence.run_facts(self.con)

    @cached_property
    def svc_models(self) -> dict[str, list[str]]:
        return service_models(self.t)

    @cached_property
    def run_services(self) -> dict[str, set[str]]:
        """Per run: the services that recorded spans of their own (were seen alive)."""
        f = self._q("SELECT DISTINCT run, service FROM fl_instances")
        out: dict[str, set[str]] = {}
        for run, service in zip(f.run, f.service, strict=True):
            out.setdefault(str(run), set()).add(str(service))
        return out

    @cached_property
    def run_layouts(self) -> dict[str, str]:
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
    def versions_of(self) -> dict[tuple[str, str], list[tuple[int, int, str]]]:
        """(service, model) -> its versions as (first_ns, last_ns, version), oldest first."""
        v = self._q(
            """SELECT service, model, version, min(first_ts) AS first_ns, max(last_ts) AS last_ns
               FROM fl_instances WHERE model IS NOT NULL AND version IS NOT NULL
               GROUP BY service, model, version"""
        )
        out: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
        v = v.sort_values(["first_ns", "version"], kind="stable")
        for s, m, ver, first, last in zip(
            v.service, v.model, v.version, v.first_ns, v.last_ns, strict=True
        ):
            out.setdefault((s, m), []).append((int(first), int(last), str(ver)))
        return out

    @cached_property
    def update_coupling(self) -> pd.DataFrame:
        return _coupling.update_coupling(self.con, self.d)

    # -- detection and analysis -----------------------------------------------------
    def incidents(self, slo_ms: float | None) -> list[Incident]:
        """Detect the incidents and analyse each, oldest first."""
        st = self.settings
        series = self.t.scope_series(st.bucket_ns)
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
        for k, g in enumerate(groups):
            run = g[0].run
            onset = min(w.start_ns for w in g)
            end = max(w.end_ns for w in g)
            base_start = max(int(run_start[run]), prev_end.get(run, 0), onset - BASELINE_MAX_NS)
            prev_end[run] = end
            if onset - base_start < (st.min_baseline_buckets - 1) * st.bucket_ns:
                continue
            # The normal traffic after the incident, as long as the baseline before it, up
            # to the next incident's first bucket (its blast radius starts a bucket early).
            after_end = end + st.bucket_ns + (onset - base_start)
            if k + 1 < len(groups) and groups[k + 1][0].run == run:
                nxt = min(w.start_ns for w in groups[k + 1]) - st.bucket_ns
                after_end = max(min(after_end, nxt), end + st.bucket_ns)
            jobs.append((run, g, base_start, onset, end, after_end, slo_ms))
        self.t.span_buckets(st.bucket_ns)  # shared inputs, read before any worker starts
        _ = self.log_sums, self.run_facts
        cursors = self.t.cursors(min(len(jobs), os.cpu_count() or 1, 4))
        if len(cursors) < 2:
            return [self._analyse(self.con, *job) for job in jobs]
        # Incidents are independent: each worker analyses every n-th one on its own cursor,
        # so one's SQL runs while another's Python scores (DuckDB frees the GIL).
        _ = self.svc_models, self.versions_of, self.update_coupling, self.run_layouts
        _ = self.run_services
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

    def _analyse(
        self,
        con: BoundConnection,
        run: str,
        g: list[_detect.Window],
        base_start: int,
        onset: int,
        end: int,
        after_end: int,
        slo_ms: float | None,
    ) -> Incident:
        bns = self.settings.bucket_ns
        kw = dict(run=run, base_start=base_start, onset=onset, end=end, bucket_ns=bns)
        ranked, sigs = {}, {}
        runs, n_models = self.run_facts
        evs = _evidence.collect_views(
            con,
            self.d,
            slo_ms=slo_ms,
            log_buckets=self.log_sums,
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
        svc_models = self.svc_models.get(service, [])
        summary = _describe.summarize(evs["model_aware"])
        first = _describe.first_mover(
            evs["model_aware"], sigs["model_aware"], ranked["model_aware"]
        )
        candidates = tuple(
            self._candidate(evs["model_aware"], r, summary, first, run)
            for r in ranked["model_aware"].itertuples()
        )
        iso = self._isolation(con, evs, sigs, run, onset, end, service, model, svc_models)
        # One bucket either side: the onset bucket is the first judged abnormal, so the
        # fault began inside the bucket before it; excess over baseline keeps this honest.
        blast = _impact.blast_radius(
            con,
            self.d,
            run=run,
            base_start=base_start,
            onset=max(onset - bns, base_start + bns),
            end=end + bns,
            after_end=after_end,
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
        layout = self.run_layouts.get(run, "per-model")
        coupling = self.update_coupling
        near = coupling[
            (coupling.run == run)
            & (coupling.changed_ns >= onset - _localize.LOOKBACK_NS)
            & (coupling.changed_ns < end)
        ]
        return Incident(
            id=incident_id(run, onset),
            run=run,
            layout=layout,
            onset_ns=int(onset),
            end_ns=int(end),
            baseline_start_ns=int(base_start),
            scopes=tuple(sorted({f"{w.scope}:{w.key} ({w.signal})" for w in g})),
            culprit=candidates[0],
            candidates=candidates,
            isolation=iso,
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

    def _isolation(
        self,
        con: BoundConnection,
        evs: dict[str, _evidence.Evidence],
        sigs: dict[str, Any],
        run: str,
        onset: int,
        end: int,
        service: str,
        model: str | None,
        svc_models: list[str],
    ) -> tuple[_isolation.IsolationView, ...]:
        """Both views' isolation time, suspects and evidence volume."""
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
                    logs=self.log_sums,
                    left=left,
                )
            spans, logs = volumes[narrow, left]
            one = _isolation.isolates_model(
                view, model=model, left=left, service_models=len(svc_models)
            )
            iso.append(_isolation.IsolationView(view, seconds, n_suspects, spans, logs, one))
        return tuple(iso)

    def _candidate(
        self, ev: _evidence.Evidence, r: Any, summary: _describe.Summary, first: Any, run: str
    ) -> Candidate:
        """``first``: :func:`~faultlens.analyzer.analysis._describe.first_mover`'s answer."""
        model = r.model if isinstance(r.model, str) else None
        v = self.versions_of.get((r.service, model), []) if model is not None else []
        # The newest version that was live during the incident.
        live = [x for x in v if x[0] < ev.buckets[-1] + ev.bucket_ns and x[1] >= ev.onset_ns]
        v = live or v
        version = v[-1][2] if v else None
        evidence = _describe.describe(
            ev,
            r,
            svc_models=self.svc_models.get(r.service, []),
            summary=summary,
            first=first[1] if first is not None and first[0] == (r.service, model) else None,
        )
        if str(r.service) not in self.run_services.get(run, set()):
            # Its callers' failed calls are all there is of it: no span of its own.
            evidence = (
                f"never seen alive in the window; named by its address {r.service}",
                *evidence,
            )
        return Candidate(int(r.rank), str(r.service), model, version, float(r.score), evidence)
