"""``--db`` parsing and the engines' one query interface (DuckDB, chDB, a ClickHouse server)."""

from __future__ import annotations

import pandas as pd
import pytest

from faultlens.analyzer.store._clickhouse_ddl import create_statements, model_columns_statements
from faultlens.analyzer.store._clickhouse_metrics import METRIC_COLUMNS
from faultlens.analyzer.store._engines import DbTargetError, Target, open_engine, parse_db


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        (".faultlens/faultlens.duckdb", Target(kind="duckdb", path=".faultlens/faultlens.duckdb")),
        ("chdb:/data/ch", Target(kind="chdb", path="/data/ch", database="otel")),
        ("chdb:ch?database=traces", Target(kind="chdb", path="ch", database="traces")),
        (
            "clickhouse://alice:s%40cret@ch.example:9440/prod",
            Target(
                kind="clickhouse",
                database="prod",
                host="ch.example",
                port=9440,
                username="alice",
                password="s@cret",
            ),
        ),
        (
            "clickhouse://ch.example?database=otel2",
            Target(kind="clickhouse", database="otel2", host="ch.example", port=8123),
        ),
        (
            "clickhouses://bob@ch.example/x?database=y",
            Target(
                kind="clickhouse",
                database="y",
                host="ch.example",
                port=8443,
                username="bob",
                secure=True,
            ),
        ),
    ],
)
def test_parse_db(db: str, expected: Target) -> None:
    assert parse_db(db) == expected


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("chdb:", "--db 'chdb:': chdb: needs a directory, e.g. chdb:.faultlens/ch"),
        ("chdb:x?db=y", "--db 'chdb:x?db=y': unknown option 'db' (known: database, secure)"),
        ("chdb:x?database=", "--db 'chdb:x?database=': ?database= needs a name"),
        (
            "clickhouse:///otel",
            "--db 'clickhouse:///otel': no host, e.g. clickhouse://default@localhost:8123",
        ),
        ("clickhouse://h:port/otel", "--db 'clickhouse://h:port/otel': the port is not a number"),
        (
            "postgres://h/db",
            "--db 'postgres://h/db': unknown scheme 'postgres' (a DuckDB file, chdb:PATH or clickhouse://)",
        ),
    ],
)
def test_parse_db_rejects(db: str, message: str) -> None:
    with pytest.raises(DbTargetError) as caught:
        parse_db(db)
    assert str(caught.value) == message


def test_target_text_hides_the_password() -> None:
    assert str(parse_db("clickhouse://alice:pw@h:1/d")) == "clickhouse://alice@h:1/d"


def test_duckdb_binds_dollar_parameters(tmp_path) -> None:
    import duckdb

    path = tmp_path / "s.duckdb"
    duckdb.connect(str(path)).close()
    with open_engine(path) as engine:
        frame = engine.query("SELECT $a AS a, $b AS b", {"a": "x'y", "b": 3})
        assert engine.dialect == "duckdb"
        assert frame.to_dict("records") == [{"a": "x'y", "b": 3}]
        assert engine.columns("otel_traces") == frozenset()


def test_missing_duckdb_file_is_a_user_error(tmp_path) -> None:
    with pytest.raises(DbTargetError, match=r"no such DuckDB file"):
        open_engine(tmp_path / "none.duckdb")


TRICKY = ["plain", "it's", "back\\slash", "tab\tand\nnewline", "", "ünï {x:String}"]


def test_chdb_binds_clickhouse_parameters_exactly(tmp_path) -> None:
    with open_engine(f"chdb:{tmp_path / 'ch'}") as engine:
        assert engine.dialect == "clickhouse"
        for text in TRICKY:
            frame = engine.query(
                "SELECT {s:String} AS s, {a:Array(String)} AS a, {n:Nullable(String)} AS n,"
                " {i:Int64} AS i",
                {"s": text, "a": [text, "b"], "n": None, "i": -7},
            )
            row = frame.to_dict("records")[0]
            assert (row["s"], list(row["a"]), pd.isna(row["n"]), row["i"]) == (
                text,
                [text, "b"],
                True,
                -7,
            )


def test_chdb_frames_have_duckdbs_types(tmp_path) -> None:
    sql = (
        "SELECT toDateTime64('2024-05-01 10:00:00.123456789', 9, 'UTC') AS t,"
        " map('k', 'v') AS m, CAST(NULL AS Nullable(String)) AS s, toUInt64(5) AS u"
    )
    with open_engine(f"chdb:{tmp_path / 'ch'}") as engine:
        frame = engine.query(sql)
    assert frame.to_dict("records") == [
        {
            "t": pd.Timestamp("2024-05-01 10:00:00.123456789"),
            "m": {"k": "v"},
            "s": frame["s"][0],
            "u": 5,
        }
    ]
    assert pd.isna(frame["s"][0])
    assert str(frame["t"].dtype) == "datetime64[ns]"


def test_model_columns_are_detected_after_the_optional_ddl(tmp_path) -> None:
    with open_engine(f"chdb:{tmp_path / 'ch'}?database=otel_x") as engine:
        for statement in create_statements("otel_x"):
            engine.execute(statement)
        before = engine.has_model_columns
        for statement in model_columns_statements("otel_x"):
            engine.execute(statement)
        assert (before, engine.has_model_columns) == (False, True)
        assert engine.table("otel_traces") == "`otel_x`.`otel_traces`"


def test_one_chdb_directory_per_process(tmp_path) -> None:
    with open_engine(f"chdb:{tmp_path / 'a'}"), pytest.raises(DbTargetError, match="one chDB"):
        open_engine(f"chdb:{tmp_path / 'b'}")
    with open_engine(f"chdb:{tmp_path / 'b'}") as engine:  # freed by the close
        assert engine.query("SELECT 1 AS one").to_dict("records") == [{"one": 1}]


def test_unreachable_server_is_one_line() -> None:
    with pytest.raises(DbTargetError) as caught:
        open_engine("clickhouse://u:secret@127.0.0.1:1/otel")
    message = str(caught.value)
    assert message.startswith("--db clickhouse://u@127.0.0.1:1/otel: cannot connect: ")
    assert "\n" not in message and "secret" not in message


def test_printed_ddl_runs_on_clickhouse(tmp_path) -> None:
    from typer.testing import CliRunner

    from faultlens.cli._app import app

    out = ""
    for args in (["--tables", "--database", "otel_p"], ["--database", "otel_p"]):
        result = CliRunner().invoke(app, ["clickhouse", "ddl", *args])
        assert result.exit_code == 0, result.output
        out += result.stdout
    statements = [s.strip() for s in out.split(";\n") if s.strip(" ;\n")]
    with open_engine(f"chdb:{tmp_path / 'ch'}?database=otel_p", read_only=False) as engine:
        for statement in statements:
            engine.execute(statement.rstrip(";"))
        assert engine.has_model_columns
        assert {"Timestamp", "Events.Name", "Links.TraceId", "SpanAttributes"} <= engine.columns(
            "otel_traces"
        )
        # The exporter's metrics tables: exactly the columns faultlens' own store mirrors
        # (its ModelName, ServiceInstanceId, ... aside), Nested ones flattened.
        for table, columns in METRIC_COLUMNS.items():
            assert engine.columns(table) == set(columns), table


def test_engine_connection_answers_like_duckdb(tmp_path) -> None:
    from faultlens.analyzer.store._engines import EngineConnection

    with open_engine(f"chdb:{tmp_path / 'ch'}") as engine:
        con = EngineConnection(engine)
        con.execute(
            "CREATE TEMPORARY TABLE fl_t ENGINE = Memory AS SELECT number AS n FROM numbers(3)"
        )
        result = con.execute("SELECT n FROM fl_t WHERE n >= {lo:UInt64} ORDER BY n", {"lo": 1})
        assert (result.fetchall(), result.fetchone()) == ([(1,), (2,)], (1,))


@pytest.mark.parametrize(
    ("db", "message"),
    [
        (
            "chdb:{tmp}/empty",
            "error: --db chdb:{tmp}/empty?database=otel: no table otel.otel_traces "
            "(the Collector's ClickHouse exporter creates it; see docs/scale-out.md)",
        ),
        (
            "mysql://h/db",
            "error: --db 'mysql://h/db': unknown scheme 'mysql' "
            "(a DuckDB file, chdb:PATH or clickhouse://)",
        ),
    ],
)
def test_cli_says_what_is_wrong_with_the_store(tmp_path, db: str, message: str) -> None:
    from typer.testing import CliRunner

    from faultlens.cli._app import app

    result = CliRunner().invoke(app, ["incidents", "--db", db.format(tmp=tmp_path)])
    assert (result.exit_code, result.stderr.strip()) == (1, message.format(tmp=tmp_path))


def test_cli_frees_the_chdb_directory(tmp_path) -> None:
    from typer.testing import CliRunner

    from faultlens.cli._app import app

    with open_engine(f"chdb:{tmp_path / 'a'}", read_only=False) as engine:
        for statement in create_statements():
            engine.execute(statement)
    result = CliRunner().invoke(
        app, ["incidents", "--db", f"chdb:{tmp_path / 'a'}", "--format", "json"]
    )
    assert (result.exit_code, result.stdout.strip()) == (0, '{\n  "incidents": []\n}')
    with open_engine(f"chdb:{tmp_path / 'b'}") as engine:  # another directory, same process
        assert engine.query("SELECT 1 AS one").to_dict("records") == [{"one": 1}]


def test_a_temp_table_is_replaced_even_after_its_projections_are_renamed(tmp_path) -> None:
    """``CREATE OR REPLACE`` on ClickHouse: a DROP first, also when the statement named
    qualified columns (sqlglot writes it back with the name in double quotes)."""
    from faultlens.analyzer.store._dialect import CLICKHOUSE, clickhouse_statements

    sql = CLICKHOUSE.temp_table("fl_t", "SELECT n.number AS k FROM numbers(3) AS n")
    statements = clickhouse_statements(sql, sources={}, describe=lambda table: [])
    assert statements[0] == 'DROP TEMPORARY TABLE IF EXISTS "fl_t"'
    with open_engine(f"chdb:{tmp_path / 'ch'}") as engine:
        for _ in range(2):  # the second time replaces the first
            for statement in statements:
                engine.execute(statement)
        assert engine.query("SELECT count(*) AS n FROM fl_t").to_dict("records") == [{"n": 3}]
