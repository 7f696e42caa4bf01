"""Plot helpers the notebooks call, so the notebooks stay thin.

Each returns a closed Figure: the notebook displays it once (as an embedded PNG in
the HTML report) and no figure piles up in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_price_volume(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """Close price (log scale) above volume, one column per symbol."""
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
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_feature_distributions(
    frames: Mapping[str, pd.DataFrame], columns: Sequence[str], *, bins: int = 50
) -> Figure:
    """A histogram per feature, one colour per symbol; the 1-99% range hides outliers."""
    ncols = 5
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        for symbol, frame in frames.items():
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
