"""What a record says about itself, as the store writes it: span kind and status names,
the model (the ordered alias list, the one copy), the endpoint, numbers and JSON as text."""

from __future__ import annotations

import math
from typing import Any

import orjson

__all__ = [
    "INVOCATION_KEYS",
    "KIND_NAMES",
    "MODEL_KEYS",
    "REQUESTED_KEYS",
    "ROUTE_KEYS",
    "SERVED_KEYS",
    "SERVED_ONLY_KEYS",
    "STATUS_NAMES",
    "VERSION_KEY",
    "double_text",
    "json_text",
    "resolve_model",
    "route_of",
    "severity_number",
]

# The exporter's strings; the JSON encoding may carry the enum's integer or its name.
KIND_NAMES: dict[Any, str] = {}
for _i, _n in enumerate(("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")):
    KIND_NAMES[_i] = _n
    KIND_NAMES[f"SPAN_KIND_{_n.upper()}"] = _n
STATUS_NAMES: dict[Any, str] = {}
for _i, _n in enumerate(("Unset", "Ok", "Error")):
    STATUS_NAMES[_i] = _n
    STATUS_NAMES[f"STATUS_CODE_{_n.upper()}"] = _n


def severity_number(number: int) -> int:
    """A log record's SeverityNumber as stored: 0 (unspecified) outside OTLP's enum, 0..24.

    The record is kept, with its SeverityText, in both encodings: the protobuf enum is open
    (a decoder keeps a number it does not know), and the Collector passes such records on.
    Only the number is dropped: past 24 it means nothing, and stored as sent a 300 would
    not fit the column and a 200 would count as a fatal log (21 and up) in the evidence."""
    return number if 0 <= number <= 24 else 0


# Model identity (docs/design.md): the ordered alias list, the one copy. The name a call
# asked for first, then the OpenInference invocation parameters (the only place the model
# appears on a failed call), then the names a hosted API served. The ClickHouse DDL
# (store/_clickhouse_ddl.py) builds its expression from these same tuples.
REQUESTED_KEYS = ("ml.model.name", "gen_ai.request.model")
INVOCATION_KEYS = ("llm.invocation_parameters", "embedding.invocation_parameters")
SERVED_KEYS = (
    "gen_ai.response.model",
    "llm.model_name",
    "embedding.model_name",
    "llm.request.model_name",
    "llm.response.model_name",
)
# Names that report what a hosted API served (become the version when they differ).
SERVED_ONLY_KEYS = ("gen_ai.response.model", "llm.response.model_name", "llm.model_name")
VERSION_KEY = "ml.model.version"
# The endpoint: a server span's http.route, else a client span's url.template (an ingress
# or load generator in front of the services).
ROUTE_KEYS = ("http.route", "url.template")
MODEL_KEYS = frozenset((*REQUESTED_KEYS, *INVOCATION_KEYS, *SERVED_KEYS, VERSION_KEY, *ROUTE_KEYS))


def route_of(attrs: dict[str, str]) -> str:
    """HttpRoute: ``http.route``, else ``url.template``, else ''."""
    return attrs.get("http.route") or attrs.get("url.template") or ""


def resolve_model(found: dict[str, str]) -> tuple[str | None, str | None]:
    """(name, version) from the alias-list attributes of one span or record."""
    name = next((found[k] for k in REQUESTED_KEYS if found.get(k)), None)
    if not name:
        for key in INVOCATION_KEYS:
            text = found.get(key)
            if text:
                try:
                    params = orjson.loads(text)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(params, dict) and isinstance(params.get("model"), str):
                    name = params["model"]
                    break
    if not name:
        for key in SERVED_KEYS:
            if found.get(key):
                name = found[key]
                break
    version = found.get(VERSION_KEY) or None
    if version is None and name:
        for key in SERVED_ONLY_KEYS:
            served = found.get(key)
            if served and served != name:
                version = served
                break
    return name or None, version


def double_text(value: float) -> str:
    """A double as Go's pcommon AsString writes it (ES6 number-to-string)."""
    if math.isnan(value) or math.isinf(value):  # Go's strconv.FormatFloat names them so
        return "json: unsupported value: " + (
            "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
        )
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def json_text(raw: Any) -> str:
    """Go encoding/json of an AsRaw() value: sorted keys, HTML-safe escapes."""
    text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text
