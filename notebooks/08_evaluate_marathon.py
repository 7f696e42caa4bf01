# ---
# jupyter:
#   title: "LeviBot · T+48h evaluation: PROMOTE, EXTEND or ROLLBACK"
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # T+48h evaluation: PROMOTE, EXTEND or ROLLBACK
#
# Five checks (realised ECE of the candidate, staleness, PSI, number of shadow trades,
# API health) and the promote rules (Sharpe canary >= prod + 0.2, MaxDD canary <= 0.9 x
# prod, no critical incident); rollback rules (<= 2 checks, critical drift or staleness,
# Sharpe canary < prod - 0.3). Both paper books are scored by the same backtest as the
# threshold sweep; Sharpe is annualised with a 24/7 year. The Sharpe difference comes
# with a paired moving-block bootstrap 95% interval: 48 hours is little data.

# %% tags=["parameters"]
upstream = ["marathon_replay"]
product = None

# %%
from pathlib import Path

import pandas as pd
from IPython.display import HTML, display

from levibot.io import read_json
from levibot.marathon.evaluate import evaluate_marathon
from levibot.marathon.replay import load_replay
from levibot.report_warnings import canary_warnings, grade_warnings, warning_box
from levibot.reporting import plot_equity_and_drawdown, plot_timeline
from levibot.run_history import list_runs, unrecorded
from levibot.run_page import write_run_page
from levibot.state.paths import Paths

# the settings the replay recorded, so the evaluation judges it by the settings it ran with
replay, summary = load_replay(Path(upstream["marathon_replay"]["summary"]).parent)
result = evaluate_marathon(replay, summary, out_path=product["evaluation"])
print(result["decision_text"])

# %% [markdown]
# ## The five checks and the metrics (prod vs canary)

# %%
display(HTML(warning_box(canary_warnings(result["canary"]) + grade_warnings(result["metrics"]))))
display(pd.DataFrame(result["checks"]).set_index("name"))
display(pd.DataFrame(result["metrics"]).round(4))

# %% [markdown]
# ## The paired evidence and its power
#
# Both releases scored on the same bars (log loss, Brier: candidate - prod, negative =
# the candidate forecasts better), the books' Sharpe and MaxDD differences with their
# 95% intervals, the minimum detectable effect and the hours the observed effect needs.

# %%
evidence = result["evidence"]
display(
    pd.DataFrame({name: evidence[name] for name in ("log_loss", "brier")}).T[
        [
            "bars",
            "candidate",
            "prod",
            "difference",
            "ci_low",
            "ci_high",
            "p_value",
            "min_detectable_effect",
            "hours_needed",
        ]
    ]
)
display(pd.DataFrame({n: evidence[n] for n in ("sharpe_difference", "drawdown_excess")}).T)
display(pd.Series(result["power"]).to_frame("power"))
display(pd.Series(result["canary"]).to_frame("canary"))

# %% [markdown]
# ## Expected results (runbook): Target / Good / Excellent

# %%
display(
    pd.DataFrame(
        {
            role: {
                m: f"{v['value']:.4g} ({v['rating']})"
                for m, v in metrics.items()
                if v["value"] is not None
            }
            for role, metrics in result["expected_results"].items()
        }
    )
)

# %% [markdown]
# ## Equity, drawdowns and trades

# %%
plot_equity_and_drawdown(result["_equity"])

# %%
display(result["_trades"].tail(40))

# %% [markdown]
# ## Calibration of realised outcomes (candidate), drift timeline and incidents

# %%
display(result["_reliability"].query("count > 0").round(3))
display(pd.Series(result["incidents"]).to_frame("count"))

# %%
plot_timeline(summary["timeline"], max_staleness_sec=result["thresholds"]["max_staleness_sec"])

# %%
# the build's on_finish hook rewrites this page with the run's id, timing and history
paths = Paths.of(replay)
index = write_run_page(
    paths.report_index,
    unrecorded(read_json(product["evaluation"])),
    earlier=list_runs(paths),
    include=[Path(product["nb"]).name],
)
print(f"reports: {index}")
