"""A vectorized decoder for the common case of OTLP JSON Lines traces.

pyarrow's C++ JSON reader parses a chunk against an explicit, strictly typed
OTLP schema (no inference, unknown fields are an error), and pyarrow compute
flattens resources, scopes and spans into the store's columns. It takes only
chunks it can decode exactly as ``_decode_json`` would: any doubt (a field it
does not know, a ``null``, a number where a string is expected, an id that is
not valid hex, a repeated attribute key, a line that is not a trace line, ...)
returns None and the chunk goes to the Python decoder, which keeps the exact
quarantine and position reporting. Rare values (ints, bools, doubles, arrays)
and resource/scope attributes go through the Python decoder's own functions,
so the rows are identical by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._columns import _I63, TRACE_COLUMNS
from ._fast_parse import FIELD_TYPES, SCALAR, has_null, object_lines, parse_chunk
from ._identity import KIND_NAMES, MODEL_KEYS, STATUS_NAMES, resolve_model, route_of
from ._json_values import BadValue, attributes, value_text
from ._scopes import Scopes

__all__ = ["decode_traces_fast"]

_KINDS = pa.array([KIND_NAMES[i] for i in range(6)], pa.string())
_STATUSES = pa.array([STATUS_NAMES[i] for i in range(3)], pa.string())


class _Unsure(Exception):
    """The chunk holds something this path does not decode exactly as the Python one."""


def _flatten(lists: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(values, parent index of each value, offsets from 0 with null lists empty)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lists) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = lists.flatten()
    parents = np.repeat(np.arange(len(lists), dtype=np.int32), lengths)
    return values, parents, offsets


def _field(struct: pa.Array, name: str) -> pa.Array:
    """A struct's field; one the parse schema left out (no line has it) as all nulls."""
    if struct.type.get_field_index(name) < 0:
        return pa.nulls(len(struct), FIELD_TYPES[name])
    return pc.struct_field(struct, name)


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(pc.fill_null(mask, True)).as_py())


_HEX = np.zeros(256, np.uint8)  # 1: 0-9 a-f, 2: A-F, 0: anything else
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = 1
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = 2
_DIGIT = np.zeros(256, bool)
_DIGIT[np.frombuffer(b"0123456789", np.uint8)] = True


def _bytes_of(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, the characters as bytes) of a string array without nulls."""
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    return np.diff(offsets), data


def _ids(raw: pa.Array, width: int, *, zero: bool, optional: bool) -> pa.Array:
    """Hex ids of `width` digits (or empty when optional), lower-cased; anything else: unsure."""
    text = pc.fill_null(raw, "")
    lengths, data = _bytes_of(text)
    ok = lengths == width
    if optional:
        ok |= lengths == 0
    if not ok.all():
        raise _Unsure("an id has the wrong length")
    kinds = _HEX[data]
    if not kinds.all():
        raise _Unsure("an id is not hex")
    if zero and len(data) and (data.reshape(-1, width) == ord("0")).all(axis=1).any():
        raise _Unsure("an all-zero id")
    return pc.utf8_lower(text) if (kinds == 2).any() else text


def _nanos(raw: pa.Array) -> pa.Array:
    """Unsigned decimal strings (absent = 0) as uint64, all below 2**63."""
    text = pc.fill_null(raw, "0")
    lengths, data = _bytes_of(text)
    if not ((lengths > 0) & (lengths < 20)).all() or not _DIGIT[data].all():
        raise _Unsure("a time is not plain digits below 10**19")
    nanos = pc.cast(text, pa.uint64())
    if len(nanos) and _any(pc.greater_equal(nanos, pa.scalar(_I63, pa.uint64()))):
        raise _Unsure("a time is out of range")
    return nanos


def _clean(value: Any) -> Any:
    """A parsed struct back to the JSON object it came from (absent fields dropped)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _attr_maps(lists: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray]:
    """A list<KeyValue> column as map<string, string>, plus flat keys, values, parents."""
    kvs, parents, offsets = _flatten(lists)
    keys = pc.fill_null(_field(kvs, "key"), "")
    value = _field(kvs, "value")
    text = _field(value, "stringValue")
    other = pc.and_(pc.is_null(text), pc.is_valid(value))
    if _any(other):
        # ints, bools, doubles and arrays: the Python decoder's own conversion.
        where = pc.indices_nonzero(pc.fill_null(other, False))
        raw = _clean(pc.take(value, where).to_pylist())
        try:
            texts = [value_text(v) for v in raw]
        except BadValue:
            raise _Unsure("an attribute value is not valid") from None
        mask = np.zeros(len(kvs), bool)
        mask[where.to_numpy()] = True
        text = pc.replace_with_mask(pc.fill_null(text, ""), pa.array(mask), pa.array(texts))
    values = pc.fill_null(text, "")
    if len(keys) and _repeated_keys(keys, parents, offsets):
        raise _Unsure("a repeated attribute key")  # the Python decoder keeps the last
    maps = pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), keys, values)
    return maps, keys, values, parents


def _repeated_keys(keys: pa.Array, parents: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether any list holds a key twice: one bit per distinct key, OR-ed per list."""
    codes = pc.dictionary_encode(keys).indices.to_numpy()
    if int(codes.max()) >= 64:
        pairs = parents.astype(np.int64) * (int(codes.max()) + 1) + codes
        return len(np.unique(pairs)) != len(pairs)
    bits = np.left_shift(np.uint64(1), codes.astype(np.uint64))
    lengths = np.diff(offsets)
    starts = offsets[:-1][lengths > 0]
    seen = np.bitwise_or.reduceat(bits, starts)
    return bool(np.any(np.bitwise_count(seen) != lengths[lengths > 0]))


def _model(
    n: int, keys: pa.Array, values: pa.Array, parents: np.ndarray, scope_of: np.ndarray, scopes: Any
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """ModelName, ModelVersion, HttpRoute per span: resolve_model over distinct alias tuples."""
    # Each span's alias values as one integer (a digit per alias key), resolved once per
    # distinct combination.
    key_codes = pc.dictionary_encode(keys)
    kcodes = key_codes.indices.to_numpy()
    aliases = [(k, c) for c, k in enumerate(key_codes.dictionary.to_pylist()) if k in MODEL_KEYS]
    sel = np.flatnonzero(np.isin(kcodes, [c for _, c in aliases]))
    value_codes = pc.dictionary_encode(pc.take(values, pa.array(sel)))
    vcodes = value_codes.indices.to_numpy().astype(np.int64) + 1
    texts = ["", *value_codes.dictionary.to_pylist()]
    has = np.zeros(n, bool)
    has[parents[sel]] = True
    combo = np.zeros(n, np.int64)
    stride = 1
    for _, code in aliases:
        mine = kcodes[sel] == code
        digit = np.zeros(n, np.int64)
        digit[parents[sel[mine]]] = vcodes[mine]
        combo += digit * stride
        stride *= len(texts)
        if stride >= 1 << 62:
            raise _Unsure("too many distinct model attribute values")
    codes = pc.dictionary_encode(pa.array(combo))
    names: list[str | None] = []
    versions: list[str | None] = []
    routes: list[str] = []
    for number in codes.dictionary.to_pylist():
        found = {}
        for key, _ in aliases:
            number, digit = divmod(number, len(texts))
            found[key] = texts[digit]
        name, version = resolve_model(found)
        names.append(name)
        versions.append(version)
        routes.append(route_of(found))
    idx = codes.indices
    scope_of_arr = pa.array(scope_of, pa.int32())
    scope_name = pc.take(pa.array([m[0] for m in scopes.scope_model], pa.string()), scope_of_arr)
    scope_version = pc.take(pa.array([m[1] for m in scopes.scope_model], pa.string()), scope_of_arr)
    name = pc.take(pa.array(names, pa.string()), idx)
    version = pc.take(pa.array(versions, pa.string()), idx)
    has_arr = pa.array(has)
    use_scope = pc.or_(pc.invert(has_arr), pc.is_null(name))
    return (
        pc.if_else(use_scope, scope_name, name),
        pc.if_else(use_scope, scope_version, version),
        pc.if_else(has_arr, pc.take(pa.array(routes, pa.string()), idx), ""),
    )


def _codes(values: pa.Array) -> np.ndarray:
    """Equal values, equal integers (null: -1)."""
    indices = pc.dictionary_encode(values).indices
    return pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _list_codes(lists: pa.Array) -> np.ndarray | None:
    """One integer per list<KeyValue>, equal exactly when the keys and values are, entry by
    entry (an absent or empty list alike, as the Python decoder reads them); None when a
    value is an array (left to the Python decoder's own conversion)."""
    kvs, _, offsets = _flatten(lists)
    value = _field(kvs, "value")
    if pc.any(pc.is_valid(_field(value, "arrayValue"))).as_py():
        return None
    parts = [_codes(_field(kvs, "key")), pc.is_valid(value).to_numpy(zero_copy_only=False)]
    parts += [_codes(_field(value, name)) for name, _ in SCALAR]
    entries = np.ascontiguousarray(np.stack(parts, axis=1).astype(np.int32))
    width = entries.shape[1] * 4
    rows = pa.Array.from_buffers(
        pa.binary(),
        len(lists),
        [None, pa.py_buffer((offsets * width).astype(np.int32)), pa.py_buffer(entries)],
    )
    return _codes(rows)


def _distinct_scopes(
    resources: pa.Array, scope_structs: pa.Array, scope_res: np.ndarray
) -> tuple[Scopes, np.ndarray]:
    """Resources and scopes, each distinct one once (a file repeats its resource and scope
    on every line), and the distinct scope of each scope."""
    resource = _field(resources, "resource")
    scope = _field(scope_structs, "scope")
    res_attrs = _list_codes(_field(resource, "attributes"))
    scope_attrs = _list_codes(_field(scope, "attributes"))
    if res_attrs is None or scope_attrs is None:
        return _scopes(resources, scope_structs, scope_res), np.arange(len(scope_structs))
    res_key = np.stack([res_attrs, _codes(_field(resources, "schemaUrl"))], axis=1)
    _, res_first, res_of = np.unique(res_key, axis=0, return_index=True, return_inverse=True)
    res_of = res_of.reshape(-1)
    scope_key = np.stack(
        [
            res_of[scope_res],
            _codes(_field(scope, "name")),
            _codes(_field(scope, "version")),
            scope_attrs,
            _codes(_field(scope_structs, "schemaUrl")),
        ],
        axis=1,
    )
    _, first, distinct_of = np.unique(scope_key, axis=0, return_index=True, return_inverse=True)
    # Only the resources the distinct scopes name, renumbered in that order.
    used, res_index = np.unique(res_of[scope_res[first]], return_inverse=True)
    scopes = _scopes(
        resources.take(pa.array(res_first[used])),
        scope_structs.take(pa.array(first)),
        res_index.reshape(-1),
    )
    return scopes, distinct_of.reshape(-1)


def _scopes(resources: pa.Array, scope_structs: pa.Array, scope_res: np.ndarray) -> Scopes:
    """Resources and scopes through the Python decoder's own attribute code."""
    scopes = Scopes()
    res_rows = _clean(
        pa.StructArray.from_arrays(
            [_field(resources, "resource"), _field(resources, "schemaUrl")], ["r", "u"]
        ).to_pylist()
    )
    scope_rows = _clean(
        pa.StructArray.from_arrays(
            [_field(scope_structs, "scope"), _field(scope_structs, "schemaUrl")], ["s", "u"]
        ).to_pylist()
    )
    try:
        for row in res_rows:
            attrs = attributes((row.get("r") or {}).get("attributes"))
            scopes.add_resource(list(attrs), list(attrs.values()), row.get("u", ""))
        for res, row in zip(scope_res.tolist(), scope_rows, strict=True):
            scope = row.get("s") or {}
            attrs = attributes(scope.get("attributes"))
            scopes.add_scope(
                res,
                scope.get("name", ""),
                scope.get("version", ""),
                list(attrs),
                list(attrs.values()),
                row.get("u", ""),
            )
    except BadValue:
        raise _Unsure("a resource or scope attribute is not valid") from None
    return scopes


def _none_listed(lists: pa.Array, decode: Any) -> dict[str, pa.Array] | None:
    """`decode`'s columns for list<...> values that are all absent or empty (spans mostly
    have no events or links): empty lists, built without decoding; None otherwise."""
    if len(lists.flatten()):
        return None
    empty = decode(lists.slice(0, 0))
    offsets = pa.array(np.zeros(len(lists) + 1, np.int32))
    return {name: pa.ListArray.from_arrays(offsets, c.values) for name, c in empty.items()}


def _events(events: pa.Array) -> dict[str, pa.Array]:
    if len(events) and (none := _none_listed(events, _events)) is not None:
        return none
    flat, _, offsets = _flatten(events)
    off = pa.array(offsets, pa.int32())
    ts = _nanos(_field(flat, "timeUnixNano")).cast(pa.int64()).cast(pa.timestamp("ns"))
    maps = _attr_maps(_field(flat, "attributes"))[0]
    return {
        "Events.Timestamp": pa.ListArray.from_arrays(off, ts),
        "Events.Name": pa.ListArray.from_arrays(off, pc.fill_null(_field(flat, "name"), "")),
        "Events.Attributes": pa.ListArray.from_arrays(off, maps),
    }


def _links(links: pa.Array) -> dict[str, pa.Array]:
    if len(links) and (none := _none_listed(links, _links)) is not None:
        return none
    flat, _, offsets = _flatten(links)
    off = pa.array(offsets, pa.int32())
    maps = _attr_maps(_field(flat, "attributes"))[0]
    return {
        "Links.TraceId": pa.ListArray.from_arrays(
            off, _ids(_field(flat, "traceId"), 32, zero=False, optional=False)
        ),
        "Links.SpanId": pa.ListArray.from_arrays(
            off, _ids(_field(flat, "spanId"), 16, zero=False, optional=False)
        ),
        "Links.TraceState": pa.ListArray.from_arrays(
            off, pc.fill_null(_field(flat, "traceState"), "")
        ),
        "Links.Attributes": pa.ListArray.from_arrays(off, maps),
    }


def decode_traces_fast(data: bytes) -> tuple[pa.Table | None, int] | None:
    """(spans table, spans read) for a chunk of OTLP JSON Lines, or None: use the Python path."""
    if has_null(data) or b"resourceSpans" not in data:
        return None  # null and absent differ in the Python decoder; logs are not taken here
    try:
        return _decode(data)
    except (_Unsure, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _decode(data: bytes) -> tuple[pa.Table | None, int]:
    lines = parse_chunk(data)
    # One object per line, as the Python decoder reads them: a line that starts with '{'
    # and ends with '}' cannot be part of a longer object, so equal counts mean one each.
    if len(lines) != object_lines(data):
        raise _Unsure("not one JSON object per line")  # the Python decoder rejects such lines
    if lines.null_count or _any(pc.equal(pc.list_value_length(lines), 0)):
        raise _Unsure("a line without resourceSpans")  # the Python decoder may reject it
    resources, _, _ = _flatten(lines)
    scope_structs, scope_res, _ = _flatten(_field(resources, "scopeSpans"))
    spans, scope_of, _ = _flatten(_field(scope_structs, "spans"))
    n = len(spans)
    if n == 0:
        return None, 0
    scopes, distinct_of = _distinct_scopes(resources, scope_structs, scope_res)
    scope_of = distinct_of[scope_of]
    start = _nanos(_field(spans, "startTimeUnixNano"))
    end = _nanos(_field(spans, "endTimeUnixNano"))
    attrs, keys, values, parents = _attr_maps(_field(spans, "attributes"))
    kind = pc.fill_null(_field(spans, "kind"), 0)
    status = _field(spans, "status")
    code = pc.fill_null(_field(status, "code"), 0)
    names, versions, routes = _model(n, keys, values, parents, scope_of, scopes)
    cols: dict[str, pa.Array] = {
        "Timestamp": start.cast(pa.int64()).cast(pa.timestamp("ns")),
        "TraceId": _ids(_field(spans, "traceId"), 32, zero=True, optional=False),
        "SpanId": _ids(_field(spans, "spanId"), 16, zero=True, optional=False),
        "ParentSpanId": _ids(_field(spans, "parentSpanId"), 16, zero=False, optional=True),
        "TraceState": pc.fill_null(_field(spans, "traceState"), ""),
        "SpanName": pc.fill_null(_field(spans, "name"), ""),
        "SpanKind": _enum(kind, _KINDS, ""),
        "SpanAttributes": attrs,
        # end - start, 0 when the span ends before it starts (as the Python decoder)
        "Duration": pc.subtract(pc.max_element_wise(end, start), start),
        "StatusCode": _enum(code, _STATUSES, "Unset"),
        "StatusMessage": pc.fill_null(_field(status, "message"), ""),
        "ModelName": names,
        "ModelVersion": versions,
        "HttpRoute": routes,
    }
    cols.update(_events(_field(spans, "events")))
    cols.update(_links(_field(spans, "links")))
    cols.update(scopes.per_scope(pa.array(scope_of, pa.int32())))
    table = pa.table({name: cols[name] for name in TRACE_COLUMNS})
    return table, n


def _enum(codes: pa.Array, names: pa.Array, other: str) -> pa.Array:
    known = pc.and_(pc.greater_equal(codes, 0), pc.less(codes, len(names)))
    index = pc.if_else(known, codes, 0)
    return pc.if_else(known, pc.take(names, index), other)
