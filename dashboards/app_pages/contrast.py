"""Layout contrast: the all-in-one monolith against one model per service, same scenario.

With both runs of a scenario in the store, the two actual runs side by side
(and the monolith's per-model projection beside them, to check it); with only
one, the analyzer's counterfactual projection beside the actual. Every column
is labelled by layout and by kind (actual, counterfactual). Where plain OTel only names
a shared process, its isolation time reads "not isolated", with the suspects and the
spans and logs still left to read: no seconds to set beside the model-aware view's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from faultlens.analyzer.present._words import isolation_words
from faultlens.dashboards._data import (
    Connection,
    Filters,
    as_text,
    connection,
    contrast,
    query,
    sibling_run,
)
from faultlens.dashboards._views import plain, seconds, share

NOT_PROJECTED = "not projected"
NOT_ISOLATED = "model not isolated"
# (row of the analyzer's contrast, card label): the cards atop every column, in order.
HEADLINE = (
    ("FIT, service-only (s)", "Isolation time (plain OTel)"),
    ("suspects, service-only", "Suspects (plain OTel)"),
    ("evidence to read, service-only (spans+logs)", "Spans + logs to read"),
    ("blast radius (requests)", "Blast radius (requests)"),
    ("collateral (requests)", "Collateral (requests)"),
    ("models restarted per update", "Models restarted per update"),
)
# How many cards share a row: each label is whole at 1400 px with three columns.
CARD_ROWS = (1, 2, 2, 1)
# The contrast's flags: whether each view's FIT reached one model (not shown as rows).
_FLAGS = {
    "FIT, model-aware (s)": "model isolated, model-aware",
    "FIT, service-only (s)": "model isolated, service-only",
}


def cell(metric: str, value: Any) -> str:
    """One value of the contrast as text: seconds, shares and absent values spelled out."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if metric.startswith("FIT"):
        return seconds(float(value))
    if "share" in metric:
        return share(float(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def contrast_text(table: pd.DataFrame) -> pd.DataFrame:
    """The analyzer's contrast as text; what the projection does not cover says so, and a
    view that only names a shared process reads "model not isolated" with what is left."""
    out = pd.DataFrame(
        {side: [cell(m, v) for m, v in table[side].items()] for side in table.columns},
        index=table.index,
    )
    for side in out.columns:
        for fit, flag in _FLAGS.items():
            if flag in table.index and table.at[flag, side] is False:
                view = fit.removeprefix("FIT, ").removesuffix(" (s)")
                out.at[fit, side] = isolation_words(
                    fit_s=None,
                    suspects=int(table.at[f"suspects, {view}", side]),
                    to_read=int(table.at[f"evidence to read, {view} (spans+logs)", side]),
                    isolates_model=False,
                )
        if "counterfactual" in side:
            out.loc[table[side].isna(), side] = NOT_PROJECTED
    return out.drop(index=[f for f in _FLAGS.values() if f in out.index])


def card_value(value: str) -> str:
    """A card shows the short form: "not isolated" (its caption says the rest)."""
    if value == NOT_PROJECTED:
        return "—"
    return "not isolated" if value.startswith(NOT_ISOLATED) else value


def render(con: Connection, filters: Filters) -> None:
    """Draw the contrast for the scenario of the chosen run."""
    st.title("Layout contrast")
    scenario = (filters.run or "").partition("/")[0]
    raw = contrast(con, filters)
    if raw.empty:
        st.info(f"No incident in the runs of scenario {plain(scenario)}: nothing to contrast.")
        return
    table = contrast_text(raw)
    sides = " · ".join(plain(c) for c in table.columns)
    st.caption(f"Scenario {plain(scenario)}: {sides}. Same fault, same load.")
    for column, side in zip(st.columns(len(table.columns)), table.columns, strict=True):
        with column:
            st.subheader(plain(side))
            start = 0
            for n in CARD_ROWS:
                row = HEADLINE[start : start + n]
                start += n
                for card, (metric, label) in zip(st.columns(n), row, strict=True):
                    value = table.at[metric, side] if metric in table.index else "—"
                    card.metric(label, card_value(value))
                    if value.startswith(NOT_ISOLATED):
                        card.caption(plain(value))
    st.subheader("Side by side")
    # A static table: "model not isolated: ..." wraps in its cell instead of being cut.
    st.table(as_text(table.reset_index()), hide_index=True, border="horizontal")

    _cost_side(con, filters, scenario)

    st.subheader("Update coupling: version changes and the models restarted with them")
    frames = []
    for run in (filters.run, sibling_run(filters)):
        if run is not None:
            scope = Filters(filters.db, filters.version, run)
            frames.append(query(connection(*scope.key), scope, "update_coupling"))
    changes = pd.concat(frames, ignore_index=True)
    if changes.empty:
        st.text("No model version changed during these runs.")
    else:
        st.dataframe(as_text(changes), hide_index=True, width="stretch")


def _cost_side(con: Connection, filters: Filters, scenario: str) -> None:
    """The other side of the trade-off: what each layout's processes used (measured from
    their OTLP metrics), beside what per-model cut in the incident."""
    from faultlens.analyzer.present._figures import layout_tradeoff

    st.subheader("Resource cost against isolation: the layout verdict")
    found = query(con, filters, "layout_verdicts").get(scenario)
    if found is None:
        st.text(
            "No verdict: the store needs process metrics (configure(metrics=True)) from "
            "both layouts of this scenario."
        )
        return
    st.markdown(f"**Verdict (measured):** {plain(found.sentence)}.")
    st.plotly_chart(layout_tradeoff(found), width="stretch")
    st.dataframe(as_text(pd.DataFrame(found.table)), hide_index=True, width="stretch")
    for column, (label, cost) in zip(
        st.columns(2),
        (("Monolith (measured)", found.monolith), ("Per-model (measured)", found.per_model)),
        strict=True,
    ):
        with column:
            st.markdown(f"**{label}**: run {plain(cost.run)}")
            cards = st.columns(2)
            cards[0].metric("Processes", str(cost.processes))
            per_1k = cost.cpu_seconds_per_1k
            cards[1].metric("CPU-s per 1,000 requests", "—" if per_1k is None else f"{per_1k:.3f}")
            cards[0].metric("Process footprint, mean (MB)", f"{cost.mean_rss_bytes / 1e6:.0f}")
            cards[1].metric("Idle footprint (MB)", f"{cost.idle_rss_bytes / 1e6:.0f}")
            models = model_cost_frame(cost)
            if not models.empty:
                st.dataframe(as_text(models), hide_index=True, width="stretch")
    loads = found.monolith.model_load_growth_bytes or found.per_model.model_load_growth_bytes
    st.caption(
        "Process footprint: the processes' resident memory, measured. Load-time growth: "
        + (
            "how much a model's process grew while the service loaded it under its scope, an "
            "estimate of the model's share (one heap cannot be split by model)."
            if loads
            else "not recorded (no service loads its models under model(...).loading())."
        )
    )


def model_cost_frame(cost: Any) -> pd.DataFrame:
    """[model, CPU in its scope (s), load-time growth (MB) when recorded] of one run."""
    models = sorted(set(cost.model_cpu_seconds) | set(cost.model_load_growth_bytes))
    frame = pd.DataFrame(
        {"model": models, "CPU in its scope (s)": [cost.model_cpu_seconds.get(m) for m in models]}
    )
    if cost.model_load_growth_bytes:
        growth = cost.model_load_growth_bytes
        frame["load-time growth (MB)"] = [
            round(growth[m] / 1e6, 1) if m in growth else None for m in models
        ]
    return frame


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
