"""What differs between DuckDB and ClickHouse, in one place.

The analysis SQL is written once, with these fragments spliced in: attribute
lookup, epoch nanoseconds, integer division (time buckets), quantiles,
``arg_max``, enum forms, parameter placeholders, identifier quoting and
temporary tables. Everything else in the analysis SQL is the subset both
engines run (CTEs, LEFT JOIN, GROUP BY, CASE, window-free aggregates).
What a dialect cannot do raises :class:`DialectError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLICKHOUSE",
    "CLICKHOUSE_SETTINGS",
    "DUCKDB",
    "BoundConnection",
    "Dialect",
    "DialectError",
    "clickhouse_statements",
    "quote",
]

# Both enum spellings the exporter has used (DESIGN.md: Storage).
_SERVER = ("Server", "SPAN_KIND_SERVER")
_CLIENT = ("Client", "SPAN_KIND_CLIENT")
_ERROR = ("Error", "STATUS_CODE_ERROR")


class DialectError(RuntimeError):
    """A SQL feature the chosen engine does not offer."""


def quote(text: str, *, mark: str, backslash_escapes: bool) -> str:
    """``text`` between ``mark``s, as SQL reads it back unchanged: the mark doubled, and
    backslashes doubled where the engine reads them as escapes (ClickHouse, not DuckDB).
    The one quoter of the project: literals (``'``) and identifiers (``"``, `````)."""
    if "\x00" in text:
        raise DialectError(f"a NUL byte cannot be quoted: {text!r}")
    if backslash_escapes:
        text = text.replace("\\", "\\\\")
    return mark + text.replace(mark, mark + mark) + mark


@dataclass(frozen=True)
class Dialect:
    """SQL fragments for one engine."""

    name: str
    ident_quote: str
    epoch_ns_fn: str  # Timestamp -> integer ns since the epoch
    intdiv_fmt: str  # "{a} // {b}" or "intDiv({a}, {b})"
    quantile_fmt: str  # "{fn}({expr}, {q})"
    arg_max_fn: str
    param_fmt: str  # "${name}" or "{{{name}:{type}}}"
    temp_table_fmt: str
    null_text: str  # a typed NULL string
    regex_group_fmt: str  # first capture group of a regular expression
    char_fmt: str  # the character with code {n}
    sorted_join_fmt: str  # an aggregate: the group's {expr} values, sorted, joined by {sep}
    backslash_escapes: bool  # a backslash in a quoted string is an escape (ClickHouse)
    ns_literal_fmt: str  # a timestamp from integer ns {ns}, comparable to Timestamp

    def char(self, n: int) -> str:
        return self.char_fmt.format(n=int(n))

    def ns_literal(self, ns: int) -> str:
        """``ns`` (since the epoch) as a timestamp: a bound on ``Timestamp`` itself, which
        zone maps and partition pruning can use (a bound on its epoch_ns could not)."""
        return self.ns_literal_fmt.format(ns=int(ns))

    def sorted_join(self, expr: str, sep: str) -> str:
        """Aggregate: the group's values of ``expr`` (never NULL), sorted, joined by ``sep``."""
        return self.sorted_join_fmt.format(expr=expr, sep=sep)

    def url_authority(self, expr: str) -> str:
        """host:port of a URL (``http://127.0.0.1:8000/predict`` -> ``127.0.0.1:8000``)."""
        return (
            "nullif("
            + self.regex_group_fmt.format(expr=expr, pattern="'^[a-z]+://([^/?#]+)'")
            + ", '')"
        )

    def ident(self, name: str) -> str:
        """An identifier (table or column, e.g. ``Events.Name``), quoted for this engine."""
        if not name:
            raise DialectError("an empty identifier")
        return quote(name, mark=self.ident_quote, backslash_escapes=self.backslash_escapes)

    def literal(self, value: str) -> str:
        """A string literal for this engine (bound parameters are preferred for values)."""
        return quote(value, mark="'", backslash_escapes=self.backslash_escapes)

    def attr(self, column: str, key: str) -> str:
        """A map attribute's value, NULL when absent or empty (ClickHouse answers '')."""
        return f"nullif({self.ident(column)}[{self.literal(key)}], '')"

    def epoch_ns(self, column: str) -> str:
        return f"{self.epoch_ns_fn}({self.ident(column)})"

    def intdiv(self, a: str, b: str) -> str:
        return self.intdiv_fmt.format(a=a, b=b)

    def bucket(self, ns_expr: str, bucket_ns: int) -> str:
        """Start (ns) of the time bucket holding ``ns_expr``."""
        return f"({self.intdiv(ns_expr, str(int(bucket_ns)))}) * {int(bucket_ns)}"

    def quantile(self, expr: str, q: float) -> str:
        return self.quantile_fmt.format(expr=expr, q=float(q))

    def arg_max(self, value: str, key: str) -> str:
        return f"{self.arg_max_fn}({value}, {key})"

    def param(self, name: str, sql_type: str = "String") -> str:
        """A bound-parameter placeholder; values never enter the SQL text."""
        return self.param_fmt.format(name=name, type=sql_type)

    def bind(self, sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """The parameters ``sql`` uses (DuckDB refuses unused named parameters)."""
        if not params:
            return {}
        used = set(re.findall(r"\$(\w+)|\{(\w+):", sql))
        names = {a or b for a, b in used}
        return {k: v for k, v in params.items() if k in names}

    def temp_table(self, name: str, select_sql: str) -> str:
        return self.temp_table_fmt.format(name=self.ident(name), select=select_sql)

    def is_server(self, column: str = "SpanKind") -> str:
        return f"{column} IN ({', '.join(map(self.literal, _SERVER))})"

    def is_client(self, column: str = "SpanKind") -> str:
        return f"{column} IN ({', '.join(map(self.literal, _CLIENT))})"

    def is_error(self, column: str = "StatusCode") -> str:
        return f"{column} IN ({', '.join(map(self.literal, _ERROR))})"

    @staticmethod
    def kind(column: str = "SpanKind") -> str:
        """The span kind as one lower-case word (server, client, internal, ...)."""
        return f"lower(replace({column}, 'SPAN_KIND_', ''))"


DUCKDB = Dialect(
    name="duckdb",
    ident_quote='"',
    backslash_escapes=False,
    epoch_ns_fn="epoch_ns",
    intdiv_fmt="({a}) // ({b})",
    quantile_fmt="quantile_cont({expr}, {q})",
    arg_max_fn="arg_max",
    param_fmt="${name}",
    temp_table_fmt="CREATE OR REPLACE TEMP TABLE {name} AS {select}",
    null_text="CAST(NULL AS VARCHAR)",
    regex_group_fmt="regexp_extract({expr}, {pattern}, 1)",
    char_fmt="chr({n})",
    sorted_join_fmt="array_to_string(list_sort(list({expr})), {sep})",
    ns_literal_fmt="make_timestamp_ns(CAST({ns} AS BIGINT))",
)

CLICKHOUSE = Dialect(
    name="clickhouse",
    ident_quote="`",
    backslash_escapes=True,
    epoch_ns_fn="toUnixTimestamp64Nano",
    intdiv_fmt="intDiv({a}, {b})",
    # Exact, with DuckDB quantile_cont's linear interpolation (plain quantile()
    # samples a reservoir above 8192 values and would differ on large windows).
    quantile_fmt="quantileExactInclusive({q})({expr})",
    arg_max_fn="argMax",
    param_fmt="{{{name}:{type}}}",
    temp_table_fmt="CREATE TEMPORARY TABLE {name} ENGINE = Memory AS {select}",
    null_text="CAST(NULL AS Nullable(String))",
    regex_group_fmt="extract({expr}, {pattern})",
    char_fmt="char({n})",
    sorted_join_fmt="arrayStringConcat(arraySort(groupArray({expr})), {sep})",
    ns_literal_fmt="fromUnixTimestamp64Nano(toInt64({ns}))",
)


class BoundConnection:
    """A connection whose ``execute`` binds only the parameters each statement uses."""

    def __init__(self, con: Any, dialect: Dialect) -> None:
        self.raw, self.dialect = con, dialect

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.raw.execute(sql, self.dialect.bind(sql, params))


# -- ClickHouse: one statement of the shared analysis SQL, made to run there ---------
# Session settings that give ClickHouse the standard-SQL behaviour the analysis
# SQL assumes (DuckDB's): unmatched LEFT JOIN columns are NULL, not 0 or '';
# an aggregate over no rows is NULL; CAST keeps NULL; a bare UNION is DISTINCT.
CLICKHOUSE_SETTINGS: dict[str, Any] = {
    "join_use_nulls": 1,
    "aggregate_functions_null_for_empty": 1,
    "cast_keep_nullable": 1,
    "union_default_mode": "DISTINCT",
}

_STORE_TABLE = re.compile(r"\b(FROM|JOIN)\s+(otel_traces|otel_logs|otel_metrics_\w+)\b(?![.\w])")
# The name as written, or as sqlglot writes it back (double quotes) after _name_projections.
_TEMP_TABLE = re.compile(r'\s*CREATE TEMPORARY TABLE\s+(`(?:[^`]|``)+`|"(?:[^"]|"")+"|\w+)')
_QUALIFIED = re.compile(r"\b\w+\.(\*|\w)")


def _name_projections(sql: str, describe: Callable[[str], list[str]]) -> str:
    """Name every ``t.col`` projection ``col`` and expand ``t.*``, as DuckDB does.

    ClickHouse names an output column ``t.col`` when ``col`` is ambiguous
    across the joined tables, so a later ``SELECT col`` from that result fails.
    """
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="clickhouse")
    for select in tree.find_all(exp.Select):
        sources = {
            t.alias_or_name: t.name for t in select.find_all(exp.Table) if t.parent_select is select
        }
        named: list[exp.Expression] = []
        for p in select.expressions:
            if isinstance(p, exp.Column) and p.table and isinstance(p.this, exp.Star):
                for column in describe(sources.get(p.table, p.table)):
                    named.append(exp.alias_(exp.column(column, table=p.table), column))
            elif isinstance(p, exp.Column) and p.table:
                named.append(exp.alias_(p, p.name))
            else:
                named.append(p)
        select.set("expressions", named)
    return tree.sql(dialect="clickhouse")


def clickhouse_statements(
    sql: str, *, sources: dict[str, str], describe: Callable[[str], list[str]]
) -> list[str]:
    """The ClickHouse statements that run one statement of the shared analysis SQL.

    - ``otel_traces`` / ``otel_logs`` / ``otel_metrics_*`` read the exporter's tables
      through ``sources`` (which add the columns faultlens' DuckDB store materializes);
    - projections get DuckDB's output names (``_name_projections``);
    - a temporary table is dropped before it is created again (DuckDB's
      ``CREATE OR REPLACE``).
    """
    if _QUALIFIED.search(sql) and re.match(r"\s*(WITH|SELECT|CREATE)\b", sql, re.IGNORECASE):
        sql = _name_projections(sql, describe)
    sql = _STORE_TABLE.sub(lambda m: f"{m.group(1)} ({sources[m.group(2)]}) AS {m.group(2)}", sql)
    temp = _TEMP_TABLE.match(sql)
    if temp:
        return [f"DROP TEMPORARY TABLE IF EXISTS {temp.group(1)}", sql]
    return [sql]
