"""Protobuf AnyValues as the ClickHouse exporter stores them (pcommon ``AsString``): the
text every protobuf decoder (spans, log records, metric data points) writes."""

from __future__ import annotations

import base64
from typing import Any

from ._identity import double_text, json_text

__all__ = ["proto_attributes", "proto_value_text"]


def _proto_raw(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "array_value":
        return [_proto_raw(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _proto_raw(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def proto_value_text(value: Any) -> str:
    """A protobuf AnyValue as the ClickHouse exporter stores it (pcommon AsString)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which is None:
        return ""
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return double_text(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json_text(_proto_raw(value))


def proto_attributes(kvs: Any) -> dict[str, str]:
    """Protobuf KeyValues as a dict of exporter text (a repeated key keeps its last value)."""
    out: dict[str, str] = {}
    for kv in kvs:  # strings, by far the most common, without a call
        value = kv.value
        if value.WhichOneof("value") == "string_value":
            out[kv.key] = value.string_value
        else:
            out[kv.key] = proto_value_text(value)
    return out
