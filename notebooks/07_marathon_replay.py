# ---
# jupyter:
#   title: "LeviBot · Marathon replay: 48 hours no model has seen, through a real server"
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
# # Marathon replay: 48 hours no model has seen, through a real server
#
# The newest `holdout_hours` of the data were kept out of every training, calibration
# and test window. A server is started on a free local port in **replay mode** (its
# clock is driven by the replay), the feature store is appended bar by bar, and a mix
# of predict / predict_deep / predict_ensemble requests from many client ids is sent
# each bar. Drift is checked every bar (15 min) and the ensemble is tuned hourly, in
# simulated time. The canary is set to 10% of the traffic (a box below says so when it
# served none, and why); every request is shadow-logged.

# %% tags=["parameters"]
upstream = ["ingest", "ensemble_tuning"]
product = None
registry_dir = "registry"
horizon = 3
holdout_hours = 72
replay_requests_per_bar = 12
drift_current_hours = 24.0
tuning_days = 3.0
speed = 0.0

# %%
from pathlib import Path

import pandas as pd
from IPython.display import HTML, display

from levibot.marathon.replay import ReplayConfig, run_replay
from levibot.report_warnings import replay_canary_warnings, warning_box
from levibot.reporting import drift_history_frame, plot_drift_history, plot_timeline
from levibot.settings import task_settings
from levibot.state.drift_log import drift_history
from levibot.state.paths import Paths

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    horizon=horizon,
    holdout_hours=holdout_hours,
    replay_requests_per_bar=replay_requests_per_bar,
    drift_current_hours=drift_current_hours,
    tuning_days=tuning_days,
)
config = ReplayConfig.from_settings(settings, speed=speed)
outcome = run_replay(settings, Path(product["summary"]).parent, config)
summary = outcome.summary
overview = {k: summary[k] for k in ("start", "end", "bars", "requests", "errors", "wall_seconds")}
display(HTML(warning_box(replay_canary_warnings(summary, config.canary_fraction))))
display(pd.Series(overview).to_frame("replay"))
display(pd.Series(summary["served_by_variant"]).to_frame("served requests"))
display(pd.Series(summary["latency_ms"]).to_frame("latency (ms)"))

# %% [markdown]
# ## Drift status, staleness and kill-switch over the replay

# %%
plot_timeline(summary["timeline"], max_staleness_sec=summary["thresholds"]["max_staleness_sec"])

# %% [markdown]
# ## Drift checks over the marathon: features, dead feeds, loss monitor, prediction drift

# %%
history = drift_history_frame(drift_history(Paths.of(outcome.settings)))
display(history.tail(12))
plot_drift_history(history)
