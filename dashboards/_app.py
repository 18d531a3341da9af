"""The Streamlit entrypoint: navigation, the shared filters, then the chosen page.

Run it with ``faultlens dashboard [--db FILE]`` (which sets ``FAULTLENS_DB``
and calls ``streamlit run`` on this file). Each page is one file under
``app_pages/`` whose ``render(con, filters)`` calls the analyzer and draws; when
Streamlit executes the page file it calls ``render(*page_context())``.

Streamlit runs this file and the page files as scripts, outside any package: they
import faultlens by absolute name (a relative import fails there).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import streamlit as st

from faultlens.analyzer import StoreError
from faultlens.dashboards._data import (
    Connection,
    Filters,
    collector_tables,
    connection,
    db_path,
    db_version,
    query,
    served,
    store_label,
)
from faultlens.dashboards._views import plain

PAGES_DIR = Path(__file__).with_name("app_pages")
# (file, title, url path, icon); the first is the default page.
PAGES = (
    ("overview.py", "Overview", "overview", ":material/monitoring:"),
    ("incident.py", "Incident", "incident", ":material/crisis_alert:"),
    ("contrast.py", "Layout contrast", "contrast", ":material/compare:"),
    ("traces.py", "Traces", "traces", ":material/account_tree:"),
    ("logs.py", "Logs", "logs", ":material/receipt_long:"),
)
BUCKETS_S = (1, 2, 5, 10, 30, 60)
_CONTEXT = "faultlens.page_context"


def page_context() -> tuple[Connection, Filters]:
    """The connection and filters the entrypoint prepared for this run's page."""
    return st.session_state[_CONTEXT]


def _ns_to_dt(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).replace(tzinfo=None)


def _dt_to_ns(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp() * 1_000_000) * 1_000


def _live(db: str, version: int, health: dict | None) -> None:
    """While ``faultlens serve`` holds the store (``health``, its answer): say what the page
    is as of, and rerun it when new data has been committed, checking every
    ``FAULTLENS_REFRESH_S`` seconds."""
    if health is None:
        return
    newest = health.get("as_of_ns")
    shown = _ns_to_dt(newest).strftime("%H:%M:%S") if newest else "no span yet"
    now = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
    st.sidebar.caption(
        f"Live from faultlens serve at {plain(health['url'])}: as of {now} UTC "
        f"(newest span {shown}), {health['open_incidents']} open incident(s)"
    )
    refresh = float(os.environ.get("FAULTLENS_REFRESH_S") or 0)
    if refresh <= 0:
        return

    @st.fragment(run_every=refresh)
    def watch() -> None:
        if db_version(db) != version:
            st.rerun(scope="app")

    watch()


def _follow(key: str, first: dt.datetime, last: dt.datetime) -> None:
    """Set the time slider's value: the whole run at first; a range that reached the
    run's end keeps reaching it as the run grows (live data)."""
    ends = st.session_state.setdefault("faultlens.range_ends", {})
    value = st.session_state.get(key)
    if value is None:
        value = (first, last)
    elif value[1] == ends.get(key):
        value = (value[0], last)
    ends[key] = last
    st.session_state[key] = (min(max(value[0], first), last), min(max(value[1], first), last))


def _sidebar(db: str) -> tuple[Connection, Filters]:
    """Draw the shared filters; stop the run with a clear message when there is no data."""
    health = served(db)  # asked once a run
    version = db_version(db, health=health)
    label = store_label(db)
    st.sidebar.caption(f"Store: {plain(label)}")
    _live(db, version, health)
    load = (
        "The OpenTelemetry Collector's ClickHouse exporter writes its tables there "
        "(docs/scale-out.md)."
        if collector_tables(db)
        else f"Load traces: `faultlens ingest PATH --db {label}`"
    )
    if not version:
        st.error(f"No faultlens store at {label}. {load}")
        st.stop()
    try:
        store = connection(db, version, None)
    except StoreError as exc:  # a server that does not answer, tables not there
        st.error(str(exc).splitlines()[0])
        st.stop()
    runs = query(store, Filters(db, version, None), "runs")
    if runs.empty:
        st.info(f"The store {label} holds no spans yet. {load}")
        st.stop()
    names = list(runs["run"])
    # ?run=<scenario>/<layout> opens a run directly: a link on-call can share.
    wanted = st.query_params.get("run")
    run = st.sidebar.selectbox(
        "Run (scenario / layout)",
        names,
        index=names.index(wanted) if wanted in names else 0,
        key="run",
    )
    st.query_params["run"] = run
    row = runs.loc[runs["run"] == run].iloc[0]
    first, last = _ns_to_dt(int(row["start_ns"])), _ns_to_dt(int(row["end_ns"]) + 1_000_000)
    key = f"time_range:{run}"
    _follow(key, first, last)
    start, end = st.sidebar.slider(
        "Time range (UTC)",
        min_value=first,
        max_value=last,
        step=dt.timedelta(seconds=1),
        format="HH:mm:ss",
        key=key,
    )
    bucket_s = st.sidebar.selectbox(
        "Bucket (seconds)", BUCKETS_S, index=BUCKETS_S.index(5), key="bucket_s"
    )
    filters = Filters(
        db=db,
        version=version,
        run=run,
        # The whole run: no bound at all (the slider's whole-second ends would clip it).
        start_ns=None if start == first else _dt_to_ns(start),
        end_ns=None if end == last else _dt_to_ns(end),
        bucket_s=int(bucket_s),
    )
    return connection(db, version, run), filters


def main() -> None:
    """Build the navigation, draw the shared filters, run the chosen page."""
    st.set_page_config(page_title="faultlens", page_icon=":material/troubleshoot:", layout="wide")
    pages = [
        st.Page(PAGES_DIR / file, title=title, url_path=url, icon=icon, default=i == 0)
        for i, (file, title, url, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    st.session_state[_CONTEXT] = _sidebar(db_path())
    page.run()


if __name__ == "__main__":
    main()
