"""The selection on real data: hourly EURUSD (tests/fixtures/EURUSD_1h.csv).

Ingests the file through the CSV source, trains both models, and runs the release step
twice: with the default gate (is a 48 h marathon able to judge the policy at all?) and
with the trade minimum lifted (what is its out-of-sample quality?). Prints test AUC with a
95% moving-block bootstrap interval, Sharpe with its interval, trades per 48 h, exposure
and the buy-and-hold baseline. For FX direction at 1h the honest expectation is an AUC
interval around 0.5 and a Sharpe interval around 0 or below after costs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from levibot.bootstrap import block_bootstrap_interval
from levibot.dataset import LABEL_DIRECTION
from levibot.ingest import run_ingest
from levibot.registry import update_canary_policy
from levibot.release import calibrate_and_register
from levibot.selection import SelectionError
from levibot.settings import load_settings
from levibot.state.paths import Paths
from levibot.training import prepare_training, train_releases

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "EURUSD_1h.csv"


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def main() -> int:
    frame = pd.read_csv(FIXTURE)
    end = pd.Timestamp(frame["timestamp"].iloc[-1]) + pd.Timedelta(hours=1)
    days = (end - pd.Timestamp(frame["timestamp"].iloc[0])).total_seconds() / 86400
    work = Path(tempfile.mkdtemp(prefix="levibot-real-"))
    settings = load_settings(
        None, root=work, source="csv", csv_path=str(FIXTURE), symbols="EURUSD",
        timeframe="1h", days=days, end=end.isoformat(), holdout_hours=48, prod_lag_days=30,
        fee_bps=1.0, slippage_bps=0.5, deep_epochs=3, deep_seq_len=32,
    )  # fmt: skip
    run_ingest(settings)
    context = prepare_training(settings)
    runs = work / "runs"
    train_releases(context, "lgbm", runs / "lgbm.json")
    train_releases(context, "deep", runs / "deep.json")
    files = (runs / "lgbm.json", runs / "deep.json")
    print(f"EURUSD 1h: {len(frame)} bars, costs 1 + 0.5 bps a side (FX-sized)")
    try:
        calibrate_and_register(settings, *files, summary_path=runs / "gated.json", reports=[])
        print("default gate (>= 20 trades per 48 h): registered")
    except SelectionError as exc:
        print(f"default gate (>= 20 trades per 48 h): refused -- {exc}")
    update_canary_policy(Paths.of(settings).canary_policy, thresholds={"gate": {"min_trades": 0}})
    releases = calibrate_and_register(settings, *files, summary_path=runs / "open.json", reports=[])
    for release in releases:
        test = release.models["lgbm"].predictions
        test = test[(test["window"] == "test") & test[LABEL_DIRECTION].notna()]
        y, p = test[LABEL_DIRECTION].to_numpy(), test["p_cal"].to_numpy()
        auc, low, high = block_bootstrap_interval((y, p), _auc)
        m = release.test.metrics
        bh = release.test.baselines["buy_hold"]
        print(
            f"{release.role}: test AUC {auc:.3f} [{low:.3f}, {high:.3f}] on {len(y)} bars; "
            f"Sharpe {m['sharpe']:.2f} [{m.get('sharpe_ci_low', np.nan):.2f}, "
            f"{m.get('sharpe_ci_high', np.nan):.2f}]; trades per 48 h "
            f"{release.test.trades_per_48h:.1f}; exposure {m['exposure']:.2f}; buy & hold "
            f"Sharpe {bh['sharpe']:.2f} (total return {bh['total_return']:+.2%}); "
            f"PBO {release.selection.generalisation['pbo']:.2f}, selection-vs-test rank "
            f"corr {release.selection.generalisation['selection_test_rank_corr']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
