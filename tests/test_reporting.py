"""The ingest report's plots stay readable (and fast) with many symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd

from levibot.reporting import MAX_PLOTTED_SYMBOLS, plot_feature_distributions, plot_price_volume


def _frames(n: int) -> dict[str, pd.DataFrame]:
    index = pd.date_range("2026-01-01", periods=50, freq="15min", tz="UTC")
    rng = np.random.default_rng(0)
    return {
        f"S{i:02d}USDT": pd.DataFrame(
            {"close": 100 + rng.random(50), "volume": rng.random(50), "f": rng.random(50)},
            index=index,
        )
        for i in range(n)
    }


def test_price_volume_plots_the_first_symbols_and_says_how_many_are_left_out():
    fig = plot_price_volume(_frames(MAX_PLOTTED_SYMBOLS + 4))
    assert len(fig.axes) == 2 * MAX_PLOTTED_SYMBOLS
    assert [ax.get_title() for ax in fig.axes[:2]] == ["S00USDT", "S01USDT"]
    assert (
        fig._suptitle.get_text()
        == f"first {MAX_PLOTTED_SYMBOLS} symbols; 4 more in the quality table"
    )


def test_few_symbols_are_all_plotted_without_a_note():
    fig = plot_price_volume(_frames(2))
    assert len(fig.axes) == 4 and fig._suptitle is None


def test_feature_histograms_draw_at_most_the_plotted_symbols():
    fig = plot_feature_distributions(_frames(MAX_PLOTTED_SYMBOLS + 4), ["f"])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == [f"S{i:02d}USDT" for i in range(MAX_PLOTTED_SYMBOLS)]
