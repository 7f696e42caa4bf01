"""The pipeline's per-symbol fan-out: one `fetch-<SYMBOL>` task per symbol, then `ingest`.

`pipeline.yaml` expands the symbols setting into a Ploomber grid (`symbol_grid`), so a
cluster (Argo, Airflow) runs the fetches in parallel; each writes its staged bars,
quarantined rows and report as the task's products and touches nothing else. The
`ingest` notebook merges them (`ingest_from_upstream`); run by papermill alone, with
no upstream, it fetches every symbol itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# Imported here, when Ploomber loads the pipeline, not inside each fetch task: Ploomber runs
# every function task in a forked child, which inherits the parent's modules, and the
# synthetic source's scipy.signal import alone takes ~1.5 s per task otherwise.
import levibot.data.sources.synthetic  # noqa: F401
from levibot.ingest import IngestResult, StagedSymbol, merge_staged, run_ingest, stage_symbol
from levibot.io import read_json, write_json_atomic, write_parquet_atomic
from levibot.settings import Settings, load_settings
from levibot.symbols import parse_symbols

FETCH_UPSTREAM = "fetch-*"
STAGED_PRODUCTS = ("bars", "quarantine", "report")


# the one grid value when the symbols setting is invalid: not a symbol (a symbol has no
# "-"), so no real fetch task can be taken for it; the parameter check skips its task
INVALID_SYMBOLS = "INVALID-SYMBOLS"


def symbol_grid(symbols: str) -> list[str]:
    """The symbols setting ("BTCUSDT,ETHUSDT") as the grid's list of values.

    Ploomber expands the grid when it loads pipeline.yaml, before the `on_render` hook
    checks the parameters; raising here would print a traceback. An invalid setting
    gives one placeholder task instead, and the hook stops the build with its one-line
    message naming the value and the fix."""
    try:
        grid = parse_symbols(symbols)
    except ValueError:
        return [INVALID_SYMBOLS]
    return grid or [INVALID_SYMBOLS]


def _product_paths(product: Any) -> dict[str, Path]:
    """{'bars': Path, ...} from a Ploomber MetaProduct or a plain mapping of paths."""
    missing = [key for key in STAGED_PRODUCTS if key not in product]
    if missing:
        raise ValueError(f"a fetch task needs the products {STAGED_PRODUCTS}; missing {missing}")
    return {key: Path(str(product[key])) for key in STAGED_PRODUCTS}


def save_staged(staged: StagedSymbol, product: Any) -> None:
    """Write one staged symbol: the frames as Parquet, then the report (written last, so a
    report on disk means its frames are complete)."""
    paths = _product_paths(product)
    write_parquet_atomic(paths["bars"], staged.clean, engine="pyarrow")
    write_parquet_atomic(paths["quarantine"], staged.quarantine, engine="pyarrow")
    write_json_atomic(paths["report"], staged.report())


def load_staged(product: Any) -> StagedSymbol:
    """One staged symbol back from its products (see `save_staged`)."""
    paths = _product_paths(product)
    report = read_json(paths["report"])
    return StagedSymbol.from_report(
        report, pd.read_parquet(paths["bars"]), pd.read_parquet(paths["quarantine"])
    )


def fetch_symbol(
    product: Any,
    symbol: str,
    project_root: str,
    source: str,
    symbols: str,
    timeframe: str,
    days: Any,
    end: Any,
    seed: Any,
    drift_scenario: str,
    drift_start: Any,
    sim_edge: Any,
    sim_edge_after: Any,
    sim_edge_change: Any,
    csv_path: Any,
    timestamp_format: Any,
    exchange_id: str,
    market_calendar: str,
    data_dir: str,
    max_bad_fraction: Any,
) -> None:
    """Ploomber task `fetch-<SYMBOL>`: fetch and validate one symbol into its products.

    Ploomber checks a function task's parameters against its signature, so they are
    spelled out (the ingest notebook's, pipeline.yaml's &ingest_params) and passed on as
    the settings they are."""
    params = {k: v for k, v in locals().items() if k not in ("product", "symbol", "project_root")}
    settings = load_settings(None, root=project_root, **params)
    save_staged(stage_symbol(settings, symbol), product)


def ingest_from_upstream(
    settings: Settings, upstream: Mapping[str, Any] | None, *, project_root: Path | str
) -> IngestResult:
    """The ingest notebook's step: merge the fetch tasks' products, or fetch here when the
    notebook runs without them (papermill alone, JupyterLab)."""
    fetched = (upstream or {}).get(FETCH_UPSTREAM)
    if not fetched:
        return run_ingest(settings, project_root=project_root)
    staged = [load_staged(product) for product in fetched.values()]
    return merge_staged(settings, staged, project_root=project_root)
