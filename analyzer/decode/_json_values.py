"""OTLP/JSON values into the store's text: AnyValue of every shape, 64-bit integers as
strings or numbers, bytes in base64 (standard or URL-safe), attribute lists into dicts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ._identity import double_text, json_text

__all__ = [
    "BadValue",
    "attributes",
    "bytes_text",
    "int_value",
    "raw_value",
    "str_value",
    "value_text",
]


class BadValue(ValueError):
    """A value the OTLP/JSON encoding does not allow."""


def int_value(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is bool or not isinstance(value, int | str):
        raise BadValue(f"{value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise BadValue(f"{value!r} is not an integer") from None
    if number < 0 or number >= 1 << 64:
        raise BadValue(f"{value!r} is out of range")
    return number


def bytes_text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue("bytesValue is not a base64 string")
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise BadValue("bytesValue is not valid base64") from None
    return base64.b64encode(raw).decode()


def raw_value(value: Any) -> Any:
    """An AnyValue as Go's AsRaw(), for JSON text of arrays and maps."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise BadValue("an AnyValue is not an object")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise BadValue("stringValue is not a string")
        return text
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise BadValue("boolValue is not a boolean")
        return flag
    if "intValue" in value:
        number = value["intValue"]
        if type(number) is bool or not isinstance(number, int | str):
            raise BadValue("intValue is not an integer")
        try:
            number = int(number)
        except ValueError:
            raise BadValue(f"intValue {number!r} is not an integer") from None
        if not -(1 << 63) <= number < 1 << 63:
            raise BadValue("intValue is out of range")
        return number
    if "doubleValue" in value:
        number = value["doubleValue"]
        if type(number) is bool or not isinstance(number, int | float | str):
            raise BadValue("doubleValue is not a number")
        try:
            return float(number)
        except ValueError:
            raise BadValue(f"doubleValue {number!r} is not a number") from None
    if "bytesValue" in value:
        return bytes_text(value["bytesValue"])
    if "arrayValue" in value:
        values = (value["arrayValue"] or {}).get("values") or []
        if not isinstance(values, list):
            raise BadValue("arrayValue.values is not a list")
        return [raw_value(v) for v in values]
    if "kvlistValue" in value:
        values = (value["kvlistValue"] or {}).get("values") or []
        if not isinstance(values, list):
            raise BadValue("kvlistValue.values is not a list")
        out = {}
        for kv in values:
            key = kv.get("key", "")
            if not isinstance(key, str):
                raise BadValue("a key is not a string")
            out[key] = raw_value(kv.get("value"))
        return out
    return None


def value_text(value: Any) -> str:
    """An OTLP/JSON AnyValue as the ClickHouse exporter stores it (pcommon AsString)."""
    if not value:
        return ""
    if not isinstance(value, dict):
        raise BadValue("an AnyValue is not an object")
    raw = raw_value(value)
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return double_text(raw)
    return json_text(raw)


def attributes(kvs: Any) -> dict[str, str]:
    """Attributes as a dict (a repeated key keeps its last value, as the exporter's map)."""
    out: dict[str, str] = {}
    if not kvs:
        return out
    for kv in kvs:
        key = kv.get("key", "")
        if type(key) is not str:
            raise BadValue("an attribute key is not a string")
        value = kv.get("value")
        if value:
            text = value.get("stringValue")
            out[key] = text if type(text) is str else value_text(value)
        else:
            out[key] = ""
    return out


def str_value(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadValue(f"{what} is not a string")
    return value
