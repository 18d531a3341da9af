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
from faultlens.dashboards._views import culprit_label, seconds, share

NOT_PROJECTED = "not projected"


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
        "Culprit": f"{culprit_label(mine)} in {mine['culprit']['service']}",
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
    headline = (
        "Isolation time, plain OTel (service-only)",
        "Blast radius (requests)",
        "Collateral (requests)",
        "Models restarted by one model's update",
    )
    for column, side in zip(st.columns(2), (left, right), strict=True):
        with column:
            st.subheader(side)
            cards = st.columns(len(headline))
            for card, measure in zip(cards, headline, strict=True):
                if measure in table.index:
                    card.metric(f"{measure} · {side}", table.at[measure, side])
    st.subheader("Side by side")
    st.dataframe(
        as_text(table.rename_axis("measure").reset_index()), hide_index=True, width="stretch"
    )


if __name__ == "__main__":
    from faultlens.dashboards._app import page_context

    render(*page_context())
