"""The alias list in ClickHouse SQL resolves model identity exactly as ingest does."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlens.analyzer.decode._identity import (
    INVOCATION_KEYS,
    REQUESTED_KEYS,
    SERVED_KEYS,
    VERSION_KEY,
    resolve_model,
)
from faultlens.analyzer.store._clickhouse_ddl import model_name_sql, model_version_sql
from faultlens.analyzer.store._engines import open_engine

# Every key of the decoder's one alias list (the DDL is generated from the same tuples).
KEYS = [*REQUESTED_KEYS, VERSION_KEY, *SERVED_KEYS]
NAMES = st.sampled_from(["", "fraud", "gpt-4o", "gpt-4o-2024-08-06", "rank", "1.2"])
INVOCATION = st.one_of(
    NAMES.map(lambda n: orjson.dumps({"model": n, "temperature": 0}).decode()),
    st.just('{"temperature": 0.1}'),
    st.just("not json"),
    st.just('{"model": 7}'),
)
ATTRS = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(KEYS, NAMES),
        **dict.fromkeys(INVOCATION_KEYS, INVOCATION),
    },
)


def _resolve(span: dict[str, str], resource: dict[str, str]) -> tuple[str | None, str | None]:
    """What ingest stores: the span's own identity, else its resource's."""
    name, version = resolve_model(span)
    return (name, version) if name is not None else resolve_model(resource)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with open_engine(f"chdb:{tmp_path_factory.mktemp('ch')}") as engine:
        yield engine


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases=st.lists(st.tuples(ATTRS, ATTRS), min_size=1, max_size=20))
def test_sql_alias_list_matches_ingest(engine, cases) -> None:
    sql = (
        f"SELECT {model_name_sql('a', 'r')} AS name, {model_version_sql('a', 'r')} AS version"
        " FROM (SELECT arrayJoin(arrayZip({spans:Array(Map(String, String))},"
        " {resources:Array(Map(String, String))})) AS pair, pair.1 AS a, pair.2 AS r)"
    )
    params = {
        "spans": [_map_text(span) for span, _ in cases],
        "resources": [_map_text(resource) for _, resource in cases],
    }
    frame = engine.query(_inline(sql, params))
    got = [(_none(n), _none(v)) for n, v in zip(frame["name"], frame["version"], strict=True)]
    assert got == [_resolve(span, resource) for span, resource in cases]


def _none(value):
    return None if value is None or value != value else value


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _map_text(attrs: dict[str, str]) -> str:
    return "map(" + ", ".join(f"{_quote(k)}, {_quote(v)}" for k, v in attrs.items()) + ")"


def _inline(sql: str, params: dict[str, list[str]]) -> str:
    # Map literals, written by the test: arrays of maps bind awkwardly as text.
    for name, maps in params.items():
        typed = "CAST([" + ", ".join(maps) + "], 'Array(Map(String, String))')"
        sql = sql.replace("{" + name + ":Array(Map(String, String))}", typed)
    return sql
