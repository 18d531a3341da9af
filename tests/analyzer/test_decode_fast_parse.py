"""The vectorized path's shortcuts (cut parse schema, null scan, absent events and links)
give exactly the Python decoder's rows, or decline."""

from __future__ import annotations

import orjson
import pytest
from test_decode_fast import GOOD, _one, _python_path, _same_rows, _sdk_lines

from faultlens.analyzer.decode._fast import decode_traces_fast
from faultlens.analyzer.decode._fast_parse import has_null


def _lines(*spans: dict) -> bytes:
    return b"".join(_one({**GOOD, "endTimeUnixNano": str(9 + i), **s}) for i, s in enumerate(spans))


@pytest.mark.parametrize("pad", range(8))
def test_null_is_found_at_every_alignment(pad: int) -> None:
    data = _lines({}, {"name": "x" * pad}) + b'{"resourceSpans": null}\n'
    assert has_null(data) and decode_traces_fast(data) is None
    assert not has_null(data.replace(b"null", b"nul "))
    assert has_null(b"null") and not has_null(b"nul") and not has_null(b"")


def test_a_key_spelled_with_escapes_in_the_first_line_reads_as_the_python_path() -> None:
    # The cut schema comes from the keys the first and last lines spell plainly; a key
    # written with a unicode escape is missed there, so the whole schema reads the chunk.
    status = _one({**GOOD, "endTimeUnixNano": "9", "status": {"code": 2, "message": "boom"}})
    escaped = status.replace(b'"message"', b'"\\u006dessage"')
    assert escaped != status
    data = escaped + _lines({}, {"kind": 2})
    fast = decode_traces_fast(data)
    assert fast is not None
    table, read, rejects = _python_path(data)
    assert (fast[1], rejects) == (read, [])
    assert _same_rows(fast[0], table)
    assert fast[0]["StatusMessage"].to_pylist() == ["boom", "", ""]


def test_events_and_links_in_no_line_or_only_in_a_middle_line() -> None:
    plain = _lines({}, {"kind": 3}, {"events": [], "links": []})
    sdk = _sdk_lines()  # events, links, every value type
    for data in (plain, plain + sdk + plain):
        fast = decode_traces_fast(data)
        assert fast is not None
        table, read, rejects = _python_path(data)
        assert (fast[1], rejects) == (read, [])
        assert _same_rows(fast[0], table)
    names = decode_traces_fast(plain)[0]["Events.Name"].to_pylist()
    assert names == [[], [], []]


def test_fields_absent_from_every_line_are_read_as_absent() -> None:
    # Only the fields the lines use are parsed; the others (end time, traceState, status,
    # kind, attributes, scope, resource) read as the Python decoder reads them when absent
    # (an absent end time is 0: the duration is 0, not negative).
    data = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [GOOD]}]}]}) + b"\n"
    fast = decode_traces_fast(data)
    assert fast is not None
    table, read, rejects = _python_path(data)
    assert (fast[1], rejects) == (read, [])
    assert _same_rows(fast[0], table)
    assert fast[0]["Duration"].to_pylist() == [0]
