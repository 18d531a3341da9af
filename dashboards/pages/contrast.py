"""Layout contrast: the all-in-one monolith against one model per service, same scenario.

With both runs of a scenario in the store, the two actual runs side by side;
with only one, the analyzer's counterfactual projection beside the actual.
Both sides are always labelled.
"""

from __future__ import annotations

import streamlit as st

from faultlens.dashboards._data import Connection, Filters, as_text, contrast, query


def render(con: Connection, filters: Filters) -> None:
    """Draw the contrast for the scenario of the chosen run."""
    st.title("Layout contrast")
    table = contrast(con, filters)
    left, right = table.columns[:2]
    st.caption(f"Scenario {table.attrs.get('scenario', '?')}: {left} against {right}")
    for column, side in zip(st.columns(2), (left, right), strict=True):
        with column:
            st.subheader(side)
            for metric, value in table[side].items():
                st.metric(f"{metric} · {side}", "—" if value is None else str(value))
    st.subheader("Side by side")
    st.dataframe(as_text(table.reset_index()), hide_index=True, width="stretch")
    coupling = query(con, filters, "update_coupling")
    st.subheader("Update coupling")
    st.dataframe(as_text(coupling), hide_index=True, width="stretch")


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
