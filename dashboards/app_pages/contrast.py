"""Layout contrast: the all-in-one monolith against one model per service, same scenario.

With both runs of a scenario in the store, the two actual runs side by side;
with only one, the analyzer's counterfactual per-model projection beside the
actual (from monolith telemetry). Both sides are always labelled.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from faultlens.dashboards._data import (
    Connection,
    Filters,
    as_text,
    connection,
    incidents,
    query,
    sibling_run,
)
from faultlens.dashboards._views import seconds, share

NOT_PROJECTED = "not projected"
# (measure, card label): the cards atop each side, the same four on both.
HEADLINE = (
    ("Isolation time, plain OTel (service-only)", "Isolation time (plain OTel)"),
    ("Blast radius (requests)", "Blast radius (requests)"),
    ("Collateral (requests)", "Collateral (requests)"),
    ("Models restarted by one model's update", "Models restarted per update"),
)


def _side(con: Connection, filters: Filters, match: dict[str, Any] | None) -> dict[str, Any]:
    """One run's answer for the scenario's incident, as the rows of the contrast."""
    found = incidents(con, filters)
    layouts = query(con, filters, "layouts")
    coupling = query(con, filters, "update_coupling")
    row: dict[str, Any] = {
        "Models restarted by one model's update": int(layouts["models"].map(len).max() or 0),
        "Version changes seen (models restarted)": (
            ", ".join(
                f"{r.model} {r.old_version}→{r.new_version} ({r.restarted})"
                for r in coupling.itertuples()
            )
            or "none"
        ),
    }
    if not found:
        return {"Culprit": "no incident", **row}
    mine = found[0]
    if match is not None:
        same = [i for i in found if i["culprit"]["model"] == match["culprit"]["model"]]
        mine = same[0] if same else mine
    plain, tagged = mine["fault_isolation"]["service_only"], mine["fault_isolation"]["model_aware"]
    blast = mine["blast_radius"]
    return {
        "Culprit": f"{mine['culprit']['model'] or 'model unknown'} in {mine['culprit']['service']}",
        "Isolation time, plain OTel (service-only)": seconds(plain["seconds"]),
        "Isolation time, with model tags": seconds(tagged["seconds"]),
        "Suspect set, plain OTel": plain["suspects"],
        "Suspect set, with model tags": tagged["suspects"],
        "Evidence to read, plain OTel (spans / logs)": (
            f"{plain['evidence_spans']} / {plain['evidence_logs']}"
        ),
        "Blast radius (requests)": blast["requests"],
        "Blast radius (share of traffic)": share(blast["share"]),
        "Collateral (requests)": "—" if blast["collateral"] is None else blast["collateral"],
        **row,
        "_incident": mine,
    }


def _counterfactual(actual: dict[str, Any]) -> dict[str, Any]:
    """The per-model projection of a monolith incident: collateral removed."""
    projected = actual.get("_incident", {}).get("counterfactual_per_model")
    out = dict.fromkeys((k for k in actual if not k.startswith("_")), NOT_PROJECTED)
    if projected is not None:
        out["Culprit"] = actual["Culprit"].split(" in ")[0] + " in its own service"
        out["Blast radius (requests)"] = projected["requests"]
        out["Blast radius (share of traffic)"] = share(projected["share"])
        out["Collateral (requests)"] = 0
        out["Models restarted by one model's update"] = 1
    return out


def contrast_table(con: Connection, filters: Filters) -> pd.DataFrame:
    """Rows: the contrast's measures; two columns, each named by layout and kind."""
    layout = (filters.run or "").partition("/")[2] or "this run"
    mine = _side(con, filters, None)
    other = sibling_run(filters)
    if other is not None:
        other_filters = Filters(filters.db, filters.version, other, bucket_s=filters.bucket_s)
        other_con = connection(filters.db, filters.version, other)
        theirs = _side(other_con, other_filters, mine.get("_incident"))
        sides = {f"{layout} (actual)": mine, f"{other.partition('/')[2]} (actual)": theirs}
        if layout == "per-model":  # the monolith always on the left
            sides = dict(reversed(sides.items()))
    else:
        sides = {f"{layout} (actual)": mine, "per-model (counterfactual)": _counterfactual(mine)}
    table = pd.DataFrame(
        {
            name: {k: v for k, v in side.items() if not k.startswith("_")}
            for name, side in sides.items()
        }
    )
    return table.fillna("—").astype(str)


def render(con: Connection, filters: Filters) -> None:
    """Draw the contrast for the scenario of the chosen run."""
    st.title("Layout contrast")
    scenario = (filters.run or "").partition("/")[0]
    table = contrast_table(con, filters)
    left, right = table.columns
    st.caption(f"Scenario {scenario}: {left} against {right}, same fault, same load.")
    for column, side in zip(st.columns(2), (left, right), strict=True):
        with column:
            st.subheader(side)
            for row in (HEADLINE[:2], HEADLINE[2:]):
                for card, (measure, label) in zip(st.columns(2), row, strict=True):
                    card.metric(label, table.at[measure, side])
    st.subheader("Side by side")
    st.dataframe(
        as_text(table.rename_axis("measure").reset_index()),
        hide_index=True,
        width="stretch",
        height=36 * (len(table) + 1) + 2,
    )


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
