"""The layout verdict's sentence and table from measured figures (analysis/_cost.py)."""

from __future__ import annotations

from faultlens.analyzer.analysis._cost import Prices, RunCost, _money, verdict


def _cost(layout: str, *, processes: int, cpu: float, rss: float) -> RunCost:
    return RunCost(
        run=f"crash/{layout}",
        layout=layout,
        scenario="crash",
        requests=1000,
        processes=processes,
        instances=processes,
        seconds=100.0,
        cpu_seconds=cpu,
        cpu_seconds_per_1k=cpu,
        mean_rss_bytes=rss,
        peak_rss_bytes=rss * 1.1,
        idle_rss_bytes=rss * 0.9,
    )


def test_verdict_puts_both_sides_in_one_sentence_and_one_table() -> None:
    mono = _cost("monolith", processes=2, cpu=2.0, rss=200e6)
    per = _cost("per-model", processes=8, cpu=3.0, rss=600e6)
    found = verdict(
        mono, per, incident={"suspects": (6, 1), "evidence": (888, 64), "collateral": (79, 0)}
    )
    assert found.sentence == (
        "per-model used +200% memory and +50% CPU per request (8 processes against 2); "
        "in this incident it cut suspects from 6 to 1, evidence to read from 888 to 64 "
        "records, collateral from 79 requests to 0"
    )
    table = {(r["side"], r["metric"]): (r["monolith"], r["per-model"]) for r in found.table}
    assert table[("cost", "mean resident memory (MB)")] == (200.0, 600.0)
    assert table[("cost", "CPU-seconds per 1,000 requests")] == (2.0, 3.0)
    assert table[("incident", "collateral")] == (79, 0)


def test_an_incident_side_without_collateral_is_left_out_not_invented() -> None:
    mono = _cost("monolith", processes=2, cpu=2.0, rss=200e6)
    per = _cost("per-model", processes=8, cpu=1.0, rss=600e6)
    found = verdict(mono, per, incident={"suspects": (6, 1), "collateral": (None, 0)})
    assert found.sentence.endswith("-50% CPU per request (8 processes against 2); "
                                   "in this incident it cut suspects from 6 to 1")  # fmt: skip
    assert not any(r["metric"] == "collateral" for r in found.table)


def test_money_only_for_the_prices_given() -> None:
    assert _money(None, 3600.0, 1e9, 3600.0, 1000) is None
    assert _money(Prices(vcpu_hour=0.04), 3600.0, 1e9, 3600.0, 1000) == {
        "cpu": 0.04,
        "total": 0.04,
        "per_1k_requests": 0.04,
    }
    both = _money(Prices(vcpu_hour=0.04, gb_hour=0.01), 3600.0, 2e9, 3600.0, 2000)
    assert both == {"cpu": 0.04, "memory": 0.02, "total": 0.06, "per_1k_requests": 0.03}


def test_a_figure_that_did_not_move_stays_and_one_that_grew_is_raised() -> None:
    mono = _cost("monolith", processes=2, cpu=2.0, rss=200e6)
    per = _cost("per-model", processes=8, cpu=3.0, rss=600e6)
    found = verdict(
        mono, per, incident={"suspects": (1, 1), "evidence": (201, 255), "collateral": (0, 0)}
    )
    assert found.sentence.endswith(
        "; in this incident it raised evidence to read from 201 to 255 records; "
        "suspects stayed at 1; collateral stayed at 0 requests"
    )


def test_a_run_with_unmeasured_processes_makes_the_cost_side_a_floor() -> None:
    mono = _cost("monolith", processes=2, cpu=2.0, rss=200e6)
    per = _cost("per-model", processes=8, cpu=3.0, rss=600e6)
    lost = RunCost(**{**mono.to_dict(), "window_ns": None, "unmeasured_instances": 2})
    assert "a floor: 2 process incarnations exported no metrics" in verdict(lost, per).sentence
    assert "floor" not in verdict(mono, per).sentence


def test_the_report_says_which_memory_figure_is_measured_and_which_estimated() -> None:
    from faultlens.analyzer.present._report import _cost_section

    cost = RunCost(
        **{
            **_cost("monolith", processes=2, cpu=2.0, rss=200e6).to_dict(),
            "model_cpu_seconds": {"fraud": 0.5, "rank": 1.25},
            "model_load_growth_bytes": {"fraud": 4.2e6, "rank": 12.6e6},
            "money": {"cpu": 0.04, "total": 0.04, "per_1k_requests": 0.04},
        }
    )
    lines = _cost_section(cost, None)
    assert (
        "- Process footprint (measured), resident memory summed over processes: mean 200 MB, "
        "peak 220 MB, idle footprint 180 MB"
    ) in lines
    assert (
        "- Load-time growth per model (an estimate: its process's resident memory growth "
        "while the service loaded it; one heap cannot be split by model): fraud 4.2 MB, "
        "rank 12.6 MB"
    ) in lines
    assert "- CPU inside each model's scope (thread CPU time): fraud 0.500 s, rank 1.250 s" in lines
    assert "- In money at the given prices: cpu 0.04, total 0.04, per 1k requests 0.04" in lines
    # Without loads recorded, no per-model memory line: nothing is invented.
    plain = _cost_section(_cost("monolith", processes=2, cpu=2.0, rss=200e6), None)
    assert not any("Load-time growth" in line for line in plain)


def test_the_contrast_page_lists_each_models_cpu_and_its_load_time_growth() -> None:
    from faultlens.dashboards.app_pages.contrast import model_cost_frame

    base = _cost("monolith", processes=2, cpu=2.0, rss=200e6).to_dict()
    cost = RunCost(**{**base, "model_cpu_seconds": {"rank": 1.25, "fraud": 0.5},
                      "model_load_growth_bytes": {"fraud": 4.2e6}})  # fmt: skip
    frame = model_cost_frame(cost)
    assert frame.astype(object).where(frame.notna(), None).to_dict("records") == [
        {"model": "fraud", "CPU in its scope (s)": 0.5, "load-time growth (MB)": 4.2},
        {"model": "rank", "CPU in its scope (s)": 1.25, "load-time growth (MB)": None},
    ]
    # No load recorded: no column that would only hold blanks.
    without = RunCost(**{**base, "model_cpu_seconds": {"rank": 1.25}})
    assert list(model_cost_frame(without).columns) == ["model", "CPU in its scope (s)"]
