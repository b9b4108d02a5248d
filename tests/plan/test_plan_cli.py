"""`twinfer plan`'s terminal view: one progress bar over every search round; the cheapest table by price."""

from __future__ import annotations

from twinfer.cli.plan import RoundProgress, print_plan


def test_progress_adds_up_rounds() -> None:
    shown = []
    bar = RoundProgress(lambda done, total, n: shown.append((done, total, n)))
    for done in range(4):  # round 1: 3 scenarios
        bar(done, 3, 0)
    for done in range(3):  # round 2: 2 scenarios
        bar(done, 2, 0)
    assert shown[-1] == (5, 5, 2) and shown[4] == (3, 5, 2)
    assert [s[0] for s in shown] == sorted(s[0] for s in shown)  # never goes backwards


def _plan(objective: str, rec: str) -> dict:
    def cand(key: str, price: float) -> dict:
        r = {"feasible": True, "ttft_s": 0.1, "tpot_s": 0.01, "slo_attainment": 1.0, "cost_per_m_output_tok_usd": 1.0}
        return {"key": key, "price_per_hour_usd": price, "devices": 1, "power_max_w": 700.0, "goodput_rps": 2.0,
                "pareto": False, "by_rate": {"2": r}}
    cands = [cand(f"f{i}", p) for i, p in enumerate([30.0, 10.0, 50.0, 20.0, 40.0])]
    return {"name": "p", "model": "m", "objective": objective, "target_rate_per_s": 2.0, "rates_per_s": [2.0],
            "slo": {"latency_percentile": "p90", "ttft_s": 1.0, "tpot_s": 0.05, "percentile": 90},
            "search": {"candidates": 5, "pruned": 0, "pruned_by": {}, "simulated": 5, "failed": 0},
            "recommended": {"key": rec, "why": "best"}, "candidates": cands, "by_rate": []}


def test_the_cheapest_table_is_sorted_by_price(capsys) -> None:
    print_plan(_plan("max_goodput_per_usd", rec="f0"), top=3)
    out = capsys.readouterr().out
    order = [k for k in ("f1", "f3", "f0", "f4", "f2") if k in out]
    assert order == ["f1", "f3", "f0"]  # $10, $20, $30: the recommended f0 is third, not first
    assert out.index("f1") < out.index("f3") < out.index("f0")


def test_a_recommended_fleet_below_the_cut_is_shown_last(capsys) -> None:
    print_plan(_plan("max_goodput_per_usd", rec="f2"), top=2)
    out = capsys.readouterr().out
    assert out.index("f1") < out.index("f3") < out.index("f2") and "f0" not in out
