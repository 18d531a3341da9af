"""OTLP/JSON metrics into the metrics rows (``_metrics.py``), through the protobuf classes.

A JSON metric is parsed into a ``Metric`` message one metric at a time
(``json_format.ParseDict``, after its exemplars' hex ids are made base64 as that parser
expects), so the walker of ``_metrics.py`` reads both encodings, and a metric that does not
parse is quarantined, one data point at a time, without its neighbours.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from ._metrics import BadPoint, MetricColumns, Scope, add_metric

__all__ = ["decode_metrics_json"]

_JSON_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def _hex_to_base64(container: dict, key: str) -> None:
    value = container.get(key)
    if isinstance(value, str) and value:
        try:
            container[key] = base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise BadPoint(f"an exemplar's {key} is not hex") from None


def _json_metric(metric: Any) -> Metric:
    """A JSON metric as a Metric message (OTLP/JSON writes ids in hex, protobuf's JSON
    mapping in base64)."""
    if not isinstance(metric, dict):
        raise BadPoint("a metric is not an object")
    for kind in _JSON_KINDS:
        data = metric.get(kind)
        if isinstance(data, dict) and isinstance(data.get("dataPoints"), list):
            for point in data["dataPoints"]:
                for exemplar in (point.get("exemplars") or []) if isinstance(point, dict) else []:
                    if isinstance(exemplar, dict):
                        _hex_to_base64(exemplar, "spanId")
                        _hex_to_base64(exemplar, "traceId")
    return json_format.ParseDict(metric, Metric(), ignore_unknown_fields=True)


def _reject_metric(out: MetricColumns, at: str, reason: str, metric: Any) -> None:
    """Quarantine a JSON metric that does not parse: each of its data points (so that
    the ledger counts points, as it does for stored ones), or the metric when it has none."""
    points: list = []
    if isinstance(metric, dict):
        for kind in _JSON_KINDS:
            data = metric.get(kind)
            if isinstance(data, dict) and isinstance(data.get("dataPoints"), list):
                points = data["dataPoints"]
                break
    for p, point in enumerate(points):
        out.reject(f"{at}.dataPoints[{p}]", reason, point)
    if not points:
        out.reject(at, reason, metric)


def decode_metrics_json(resources: Any, label: str, out: MetricColumns) -> None:
    """The ``resourceMetrics`` list of one OTLP/JSON document."""
    if not isinstance(resources, list):
        out.reject(label, "resourceMetrics is not a list", resources)
        return
    for r, container in enumerate(resources):
        where = f"{label} resourceMetrics[{r}]"
        try:
            if not isinstance(container, dict):
                raise BadPoint("not an object")
            resource = json_format.ParseDict(
                container.get("resource") or {}, Resource(), ignore_unknown_fields=True
            )
            url = container.get("schemaUrl") or ""
            scopes = container.get("scopeMetrics") or container.get("instrumentationLibraryMetrics")
            parsed_scopes = []
            for s, scope_container in enumerate(scopes or []):
                scope = scope_container.get("scope") or scope_container.get(
                    "instrumentationLibrary"
                )
                holder = _ScopeHolder(
                    json_format.ParseDict(
                        scope or {}, InstrumentationScope(), ignore_unknown_fields=True
                    ),
                    scope_container.get("schemaUrl") or "",
                )
                scope_rows = Scope(resource, url, holder)
                parsed_scopes.append((s, scope_rows, scope_container.get("metrics") or []))
        except (BadPoint, json_format.ParseError, AttributeError, TypeError) as exc:
            reason = f"resource or scope does not parse ({exc})"
            scopes = container.get("scopeMetrics") if isinstance(container, dict) else None
            metrics = [
                (f"{where}.scopeMetrics[{s}].metrics[{m}]", metric)
                for s, sc in enumerate(scopes if isinstance(scopes, list) else [])
                if isinstance(sc, dict) and isinstance(sc.get("metrics"), list)
                for m, metric in enumerate(sc["metrics"])
            ]
            for at, metric in metrics:
                _reject_metric(out, at, reason, metric)
            if not metrics:
                out.reject(where, reason, container)
            continue
        for s, context, metrics in parsed_scopes:
            for m, raw in enumerate(metrics):
                at = f"{where}.scopeMetrics[{s}].metrics[{m}]"
                try:
                    metric = _json_metric(raw)
                except (BadPoint, json_format.ParseError, AttributeError, TypeError) as exc:
                    _reject_metric(out, at, f"metric does not parse ({exc})", raw)
                    continue
                add_metric(out, context, metric, at)


class _ScopeHolder:
    """A JSON scope in the shape of a ScopeMetrics message (what Scope reads)."""

    __slots__ = ("schema_url", "scope")

    def __init__(self, scope: InstrumentationScope, schema_url: str) -> None:
        self.scope = scope
        self.schema_url = schema_url
