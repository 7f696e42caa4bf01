# ---
# jupyter:
#   title: "LeviBot · Ingest: market bars -> validation/quarantine -> feature store"
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
# # Ingest: market bars -> validation/quarantine -> feature store
#
# Merges the symbols the `fetch-<SYMBOL>` tasks fetched and validated (or fetches them
# here when run on its own), sets bad rows aside with a reason, upserts the clean bars
# into the Parquet feature store and recomputes the features.
# Parameters come from `env.yaml` through `pipeline.yaml`; the market and path settings
# used here are recorded in the ingest manifest, and each later task adds its own.

# %% tags=["parameters"]
upstream = None
product = None
project_root = "."
source = "synthetic"
symbols = "BTCUSDT,ETHUSDT,SOLUSDT"
timeframe = "15m"
days = 120
end = None
seed = 7
drift_scenario = "none"
drift_start = None
sim_edge = 1.0
sim_edge_after = None
sim_edge_change = None
csv_path = None
timestamp_format = None
exchange_id = "binance"
market_calendar = "24/7"
data_dir = "data"
max_bad_fraction = 0.01

# %%
from IPython.display import display

from levibot.features import CROSS_ASSET_FEATURES, FEATURES
from levibot.pipeline_tasks import ingest_from_upstream
from levibot.reporting import plot_feature_distributions, plot_price_volume
from levibot.settings import load_settings

settings = load_settings(
    None,
    root=project_root,
    source=source,
    symbols=symbols,
    timeframe=timeframe,
    days=days,
    end=end,
    seed=seed,
    drift_scenario=drift_scenario,
    market_calendar=market_calendar,
    drift_start=drift_start,
    sim_edge=sim_edge,
    sim_edge_after=sim_edge_after,
    sim_edge_change=sim_edge_change,
    csv_path=csv_path,
    timestamp_format=timestamp_format,
    exchange_id=exchange_id,
    data_dir=data_dir,
    max_bad_fraction=max_bad_fraction,
)
result = ingest_from_upstream(settings, upstream, project_root=project_root)
print(f"window [{result.window[0]}, {result.window[1]}) from the {settings.source} source")

# %% [markdown]
# ## Data quality
# Rows fetched, kept and quarantined per symbol; gaps are runs of missing bars on the
# timeframe grid. Quarantined rows are kept with their reason under `data/quarantine/`.

# %%
display(result.quality.set_index("symbol"))

# %%
for symbol, rows in result.quarantine.items():
    if len(rows):
        print(symbol)
        display(rows["reason"].value_counts().to_frame("rows"))

# %% [markdown]
# ## Price and volume

# %%
plot_price_volume(result.features)

# %% [markdown]
# ## Feature distributions
# The 18 model features plus the cross-asset ones; NaN share in each title.

# %%
plot_feature_distributions(result.features, FEATURES + CROSS_ASSET_FEATURES)
