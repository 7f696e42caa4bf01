"""Plot helpers the notebooks call, so the notebooks stay thin.

Each returns a closed Figure: the notebook displays it once (as an embedded PNG in
the HTML report) and no figure piles up in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_PLOTTED_SYMBOLS = 6  # a report with a column per symbol of 100 is unreadable and slow


def plotted_symbols(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The first MAX_PLOTTED_SYMBOLS symbols, in the settings' order (tables show all)."""
    return dict(list(frames.items())[:MAX_PLOTTED_SYMBOLS])


def plot_price_volume(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """Close price (log scale) above volume, one column per symbol (the first
    MAX_PLOTTED_SYMBOLS; the figure's title says how many were left out)."""
    shown = plotted_symbols(frames)
    left_out = len(frames) - len(shown)
    frames = shown
    fig, axes = plt.subplots(
        2, len(frames), figsize=(5 * len(frames), 5), sharex="col", squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
    )  # fmt: skip
    for col, (symbol, frame) in enumerate(frames.items()):
        price_ax, volume_ax = axes[0, col], axes[1, col]
        price_ax.plot(frame.index, frame["close"], lw=0.7)
        price_ax.set_yscale("log")
        price_ax.set_title(symbol)
        volume_ax.fill_between(frame.index, frame["volume"], step="post", color="grey", lw=0)
        volume_ax.set_ylabel("volume")
        volume_ax.tick_params(axis="x", labelrotation=30)
    if left_out:
        fig.suptitle(f"first {len(frames)} symbols; {left_out} more in the quality table")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_feature_distributions(
    frames: Mapping[str, pd.DataFrame], columns: Sequence[str], *, bins: int = 50
) -> Figure:
    """A histogram per feature, one colour per symbol (the first MAX_PLOTTED_SYMBOLS;
    the NaN share is over all of them); the 1-99% range hides outliers."""
    ncols = 5
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        for symbol, frame in plotted_symbols(frames).items():
            values = frame[column].dropna()
            if values.empty:
                continue
            low, high = np.nanpercentile(values, [1, 99])
            if low == high:
                low, high = low - 0.5, high + 0.5
            ax.hist(values.clip(low, high), bins=bins, alpha=0.5, label=symbol, density=True)
        missing = np.mean([frame[column].isna().mean() for frame in frames.values()])
        ax.set_title(f"{column} (NaN {missing:.1%})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def window_table(runs: Sequence[Mapping]) -> pd.DataFrame:
    """Metrics of each run per window (calibration / test), one row each."""
    rows = [
        {"role": run["role"], "kind": run["kind"], "window": window, **metrics}
        for run in runs
        for window, metrics in run["metrics"].items()
    ]
    return pd.DataFrame(rows).set_index(["role", "kind", "window"]).round(4)


def _grid(n: int, width: float = 5.0, height: float = 3.5):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def plot_importance(runs: Sequence[Mapping], top: int = 20) -> Figure:
    """LightGBM gain importance, one panel per release."""
    fig, axes = _grid(len(runs), height=5)
    for ax, run in zip(axes, runs, strict=True):
        gain = pd.Series(run["importance_gain"]).sort_values().tail(top)
        ax.barh(gain.index, gain.to_numpy())
        ax.set_title(f"{run['role']}: gain importance")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_learning_curves(runs: Sequence[Mapping]) -> Figure:
    """Train vs validation log-loss per boosting round (early stopping on the train tail)."""
    fig, axes = _grid(len(runs))
    for ax, run in zip(axes, runs, strict=True):
        curves = run["learning_curve"]
        for split in ("train", "valid"):
            ax.plot(curves[f"{split}_binary_logloss"], label=split)
        ax.axvline(run["best_iteration"] - 1, color="grey", ls="--", lw=0.8, label="best")
        ax.set(title=f"{run['role']}: log-loss", xlabel="round")
        ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_loss_curves(runs: Sequence[Mapping]) -> Figure:
    """Transformer train/validation loss per epoch."""
    fig, axes = _grid(len(runs))
    for ax, run in zip(axes, runs, strict=True):
        history = pd.DataFrame(run["history"]).set_index("epoch")
        history.plot(ax=ax, marker="o")
        ax.set(title=f"{run['role']}: loss (BCE + w * NLL)", xlabel="epoch")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_uncertainty_vs_error(runs: Sequence[Mapping]) -> Figure:
    """Brier and hit rate per epistemic-uncertainty quintile on the test window."""
    from levibot.models.evaluation import uncertainty_table

    fig, axes = _grid(len(runs))
    for ax, run in zip(axes, runs, strict=True):
        predictions = pd.read_parquet(run["predictions"])
        test = predictions[(predictions["window"] == "test")].dropna(subset=["label_direction"])
        table = uncertainty_table(test["label_direction"], test["p_raw"], test["epistemic"])
        ax.plot(table["mean_uncertainty"], table["brier"], marker="o", label="Brier")
        twin = ax.twinx()
        twin.plot(
            table["mean_uncertainty"], table["hit_rate"], marker="s", color="C1", label="hit rate"
        )
        ax.set(
            title=f"{run['role']}: test window",
            xlabel="epistemic variance (quintile mean)",
            ylabel="Brier",
        )
        twin.set_ylabel("hit rate")
        ax.legend(loc="upper left")
        twin.legend(loc="upper right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_reliability(release) -> Figure:
    """Reliability diagram (test window), raw vs calibrated, with bin counts."""
    fig, axes = _grid(len(release.models), height=4)
    for ax, (kind, model) in zip(axes, release.models.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        for name, table in model.reliability.items():
            filled = table[table["count"] > 0]
            ax.plot(filled["mean_predicted"], filled["observed"], marker="o", label=name)
            if name == "calibrated":
                for _, row in filled.iterrows():
                    ax.annotate(
                        str(int(row["count"])), (row["mean_predicted"], row["observed"]), fontsize=6
                    )
        ax.set(
            title=f"{release.role} {kind}: ECE {model.calibration['ece_raw']:.3f} -> "
            f"{model.calibration['ece_calibrated']:.3f} ({model.calibration['method']})",
            xlabel="mean predicted P(up)",
            ylabel="observed frequency",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_sweep_heatmap(release) -> Figure:
    """Score (Sharpe - 3 MaxDD) over the entry/exit grid; the chosen pair is marked."""
    table = release.sweep.pivot(index="exit", columns="entry", values="score")
    fig, ax = plt.subplots(figsize=(8, 5))
    mesh = ax.pcolormesh(
        table.columns, table.index, table.to_numpy(), shading="nearest", cmap="viridis"
    )
    fig.colorbar(mesh, ax=ax, label="Sharpe - 3 MaxDD (calibration window)")
    ax.scatter(
        [release.policy.entry_threshold],
        [release.policy.exit_threshold],
        color="red",
        marker="x",
        s=80,
    )
    ax.set(
        title=f"{release.role}: threshold sweep", xlabel="entry threshold", ylabel="exit threshold"
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_equity_and_drawdown(equity: Mapping[str, pd.Series]) -> Figure:
    """Paper equity curves (prod vs canary) and their drawdowns over the marathon."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[2, 1])
    for name, curve in equity.items():
        top.plot(curve.index, curve.to_numpy(), label=name)
        drawdown = curve.to_numpy() / curve.cummax().to_numpy() - 1
        bottom.fill_between(curve.index, drawdown, alpha=0.4, label=name)
    top.set(title="paper equity (net of fees)", ylabel="equity")
    bottom.set(ylabel="drawdown")
    top.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_timeline(timeline: Sequence[Mapping], *, max_staleness_sec: float) -> Figure:
    """Drift status, worst staleness (against its limit) and the kill-switch over the bars."""
    frame = pd.DataFrame(timeline)
    frame["bar"] = pd.to_datetime(frame["bar"])
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    levels = {"ok": 0, "warning": 1, "critical": 2, "insufficient_data": -1}
    if "drift" in frame:
        drift = frame.dropna(subset=["drift"])
        axes[0].step(drift["bar"], drift["drift"].map(levels), where="post")
    axes[0].set(yticks=[-1, 0, 1, 2], yticklabels=["insufficient", "ok", "warning", "critical"],
                title="drift status")  # fmt: skip
    axes[1].plot(frame["bar"], frame["staleness"].astype(float))
    axes[1].axhline(max_staleness_sec, color="red", lw=0.8, ls="--")
    axes[1].set(ylabel="staleness (s)")
    axes[2].step(frame["bar"], frame["kill_switch"].astype(int), where="post", color="black")
    axes[2].set(ylabel="kill-switch", yticks=[0, 1])
    fig.tight_layout()
    plt.close(fig)
    return fig


DRIFT_TABLE_COLUMNS = [
    "method",
    "status",
    "psi",
    "psi_critical_threshold",
    "ks",
    "ks_critical_threshold",
    "scale",
    "scale_high_threshold",
    "n_current",
    "dead_feed",
]


def drift_table(result: Mapping) -> pd.DataFrame:
    """Per feature: what is compared, its value and effective limits, and the status."""
    frame = pd.DataFrame(result["features"]).T
    return frame.reindex(columns=DRIFT_TABLE_COLUMNS)


def plot_drift(result: Mapping, reference, current: Mapping[str, pd.DataFrame], *, top: int = 4):
    """Each feature's PSI / KS as a share of its own critical limit (1 = the limit), and
    reference-vs-current histograms of the compared values of the most drifted ones.

    `current`: the window's rows per symbol, compared as the reference says (changes
    for persistent features)."""
    from levibot.drift.reference import monitored_rows

    frame = drift_table(result).dropna(subset=["psi"])
    for metric in ("psi", "ks"):
        frame[f"{metric} / limit"] = frame[metric].astype(float) / frame[
            f"{metric}_critical_threshold"
        ].astype(float)
    frame = frame.sort_values("psi / limit")
    fig = plt.figure(figsize=(13, 8))
    grid = fig.add_gridspec(2, top)
    colors = frame["status"].map({"ok": "C2", "warning": "C1", "critical": "C3"}).fillna("grey")
    for col, metric in enumerate(("psi", "ks")):
        ax = fig.add_subplot(grid[0, col * top // 2 : (col + 1) * top // 2])
        labels = [f"{name} ({frame.at[name, 'method']})" for name in frame.index]
        ax.barh(labels, frame[f"{metric} / limit"], color=colors)
        ax.axvline(1.0, color="C3", ls="--", lw=0.8)
        ax.set(title=f"{metric.upper()} / its critical limit ({result['status']})")
        ax.tick_params(labelsize=7)
    rows = monitored_rows(current, reference.features, reference.methods)
    for col, name in enumerate(frame.index[::-1][:top]):
        ax = fig.add_subplot(grid[1, col])
        ref = np.asarray(reference.sorted_values[name], dtype=float)
        cur = rows.values[rows.features.index(name)]
        cur = cur[~np.isnan(cur)]
        both = np.concatenate([ref, cur]) if len(cur) else ref
        low, high = np.nanpercentile(both, [1, 99]) if len(both) else (0, 1)
        bins = np.linspace(low, high if high > low else low + 1, 40)
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(cur, bins=bins, density=True, alpha=0.5, label="current")
        ax.set_title(
            f"{name} ({reference.methods.get(name, 'level')}): PSI "
            f"{frame.at[name, 'psi']:.2f} / {frame.at[name, 'psi_critical_threshold']:.2f}",
            fontsize=9,
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def drift_history_frame(history: Sequence[Mapping]) -> pd.DataFrame:
    """One row per stored drift check: time, status, critical features, each served
    release's loss CUSUM against its limit and its prediction-drift status."""
    rows = []
    for report in history:
        row = {
            "time": pd.Timestamp(report["timestamp"]),
            "status": report["status"],
            "critical": ", ".join(report.get("critical_features", [])),
            "dead": ", ".join(report.get("dead_features", [])),
        }
        for monitor in report.get("performance", []):
            role = monitor["role"]
            row[f"{role} cusum"] = monitor.get("statistic")
            row[f"{role} cusum limit"] = monitor.get("limit")
            row[f"{role} loss"] = monitor.get("mean_loss")
        for role, drift in (report.get("prediction_drift") or {}).items():
            row[f"{role} prediction drift"] = drift.get("status")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("time").reset_index(drop=True) if rows else pd.DataFrame()


def plot_drift_history(frame: pd.DataFrame) -> Figure:
    """The drift status and each release's loss CUSUM (against its limit) over the checks."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    levels = {"ok": 0, "warning": 1, "critical": 2}
    if not frame.empty:
        axes[0].step(frame["time"], frame["status"].map(levels).fillna(-1), where="post")
        for role, color in (("prod", "C0"), ("candidate", "C1")):
            if f"{role} cusum" in frame:
                axes[1].plot(frame["time"], frame[f"{role} cusum"].astype(float), color=color,
                             label=f"{role} loss CUSUM")  # fmt: skip
                axes[1].plot(frame["time"], frame[f"{role} cusum limit"].astype(float),
                             color=color, ls="--", lw=0.8)  # fmt: skip
        axes[1].legend(fontsize=8)
    axes[0].set(yticks=[-1, 0, 1, 2], yticklabels=["other", "ok", "warning", "critical"],
                title="drift checks over the marathon")  # fmt: skip
    axes[1].set(ylabel="CUSUM (sd units)")
    fig.tight_layout()
    plt.close(fig)
    return fig
