"""A small sequence transformer with MC-dropout uncertainty.

Input: the last ``seq_len`` bars of standardised features of one symbol. Heads: a
logit for P(up), the expected forward return mu and an aleatoric log-sigma, trained
with BCE + Gaussian NLL. Dropout stays active at inference for MC-dropout: all samples
run in ONE batched forward pass (samples stacked on the batch dimension), seeded, so
the same seed gives the same answer. Saved as state_dict + config + normalisation
statistics (never a pickled module) and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from levibot.io import atomic_write
from levibot.models.artifacts import read_sidecar, write_sidecar


@dataclass(frozen=True)
class DeepConfig:
    """Architecture and training knobs; CPU-friendly defaults (~1 min on 2 cores)."""

    n_features: int
    seq_len: int = 64
    patch_len: int = 8  # bars per token: 64 bars -> 8 tokens, ~10x cheaper than a token per bar
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    dim_feedforward: int = 64
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    return_loss_weight: float = 0.5
    patience: int = 3
    max_train_samples: int = 24_000

    def __post_init__(self) -> None:
        if self.seq_len % self.patch_len:
            raise ValueError(
                f"seq_len {self.seq_len} must be a multiple of patch_len {self.patch_len}"
            )


class SequenceTransformer(nn.Module):
    """Encoder over patches of consecutive bars; the newest patch's state feeds three heads.

    Bars are grouped into tokens of ``patch_len`` bars (as in PatchTST): attention over
    8 tokens instead of 64 keeps CPU training and MC-dropout inference fast, and the
    newest token still holds every feature of the newest bars.
    """

    def __init__(self, config: DeepConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = config.seq_len // config.patch_len
        self.embed = nn.Linear(config.n_features * config.patch_len, config.d_model)
        self.position = nn.Parameter(torch.zeros(1, self.tokens, config.d_model))
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.dim_feedforward, config.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.head_dropout = nn.Dropout(config.dropout)
        self.heads = nn.Linear(config.d_model, 3)  # logit, mu, log_sigma

    def forward(
        self, x: torch.Tensor, *, mc_generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads for `x`; with `mc_generator`, dropout is on and every mask is drawn from
        that generator (MC-dropout), whatever the module's train/eval mode.

        The MC path touches no module state and no global RNG, so concurrent calls
        (server threads, prod and candidate at once) cannot disturb each other.
        """
        patches = x.reshape(x.shape[0], self.tokens, -1)  # consecutive bars per token
        hidden = self.embed(patches) + self.position
        if mc_generator is None:
            hidden = self.encoder(hidden)
            last = self.head_dropout(hidden[:, -1])
        else:
            p = self.config.dropout
            for layer in self.encoder.layers:
                hidden = _encoder_layer(layer, hidden, p, mc_generator)
            last = _dropout(hidden[:, -1], p, mc_generator)
        out = self.heads(last)
        return out[:, 0], out[:, 1], out[:, 2].clamp(-7.0, 5.0)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Inverted dropout with masks from `generator` (what nn.Dropout does in train mode)."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


def _attention(
    attn: nn.MultiheadAttention, x: torch.Tensor, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Batch-first self-attention with the module's weights and dropout on the weights."""
    batch, tokens, width = x.shape
    heads, depth = attn.num_heads, width // attn.num_heads
    q, k, v = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, tokens, heads, depth).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(depth), dim=-1)
    mixed = (_dropout(weights, p, generator) @ v).transpose(1, 2).reshape(batch, tokens, width)
    return attn.out_proj(mixed)


def _encoder_layer(
    layer: nn.TransformerEncoderLayer, x: torch.Tensor, p: float, generator: torch.Generator
) -> torch.Tensor:
    """nn.TransformerEncoderLayer's post-norm forward (its defaults), dropout from `generator`."""
    x = layer.norm1(x + _dropout(_attention(layer.self_attn, x, p, generator), p, generator))
    inner = _dropout(layer.activation(layer.linear1(x)), p, generator)
    return layer.norm2(x + _dropout(layer.linear2(inner), p, generator))


@dataclass
class Normaliser:
    """Per-feature mean/std from the training window; NaN becomes 0 (the mean)."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, values: np.ndarray) -> Normaliser:
        """Statistics over finite values; an all-NaN column (no such feed) gets 0 / 1."""
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        filled = np.where(finite, values, 0.0)
        mean = filled.sum(axis=0) / np.maximum(count, 1)
        var = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
        std = np.sqrt(var)
        return cls(mean.tolist(), np.where(std > 0, std, 1.0).tolist())

    def transform(self, values: np.ndarray) -> np.ndarray:
        scaled = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return np.nan_to_num(np.clip(scaled, -10, 10), nan=0.0).astype(np.float32)


class SequenceRows:
    """Input windows gathered on demand from one array (no copy of every window).

    Each symbol's normalised feature matrix is stored after ``seq_len - 1`` zero rows
    (so early rows get left padding and symbols never bleed into each other). A sample
    is a start index into that array; its input is the ``seq_len`` rows from there,
    ending at the sample's own bar.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], seq_len: int) -> None:
        self.seq_len = seq_len
        width = next(iter(arrays.values())).shape[1]
        pad = np.zeros((seq_len - 1, width), dtype=np.float32)
        blocks, self.offset, cursor = [], {}, 0
        for symbol, values in arrays.items():
            self.offset[symbol] = cursor
            blocks += [pad, values.astype(np.float32)]
            cursor += len(pad) + len(values)
        self.values = np.concatenate(blocks)

    def starts(self, symbol: str, positions: np.ndarray) -> np.ndarray:
        """Start indices of the windows ending at row `positions` of `symbol`."""
        return self.offset[symbol] + np.asarray(positions, dtype=np.int64)

    def gather(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), seq_len, n_features) input windows."""
        return self.values[np.asarray(starts)[:, None] + np.arange(self.seq_len)[None, :]]


def row_starts(
    seqs: SequenceRows, frames: Mapping[str, pd.DataFrame], rows: pd.DataFrame
) -> np.ndarray:
    """Window start index for every row of a pooled frame (index timestamp, col symbol)."""
    starts = np.empty(len(rows), dtype=np.int64)
    for symbol in rows["symbol"].unique():
        where = np.flatnonzero(rows["symbol"].to_numpy() == symbol)
        positions = frames[symbol].index.get_indexer(rows.index[where])
        if (positions < 0).any():
            raise KeyError(f"{symbol}: some rows are not in the feature frames")
        starts[where] = seqs.starts(symbol, positions)
    return starts


def _spread(samples: np.ndarray) -> np.ndarray:
    """Variance over samples, shifted by the first so identical samples give exactly 0."""
    return np.var(samples - samples[:1], axis=0)


MC_OUTPUTS = ("p_up", "mu", "epistemic", "mu_epistemic", "aleatoric")


def summarise_mc(samples: dict[str, np.ndarray], n: int | None = None) -> dict[str, np.ndarray]:
    """Means and variances over the first `n` samples (all by default) of `mc_samples`."""
    prob, mu, sigma2 = (samples[key][:n] for key in ("p_up", "mu", "sigma2"))
    return {
        "p_up": prob.mean(axis=0),
        "mu": mu.mean(axis=0),
        "epistemic": _spread(prob),
        "mu_epistemic": _spread(mu),
        "aleatoric": sigma2.mean(axis=0),
    }


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class DeepModel:
    """Trained transformer + its normaliser and feature order."""

    network: SequenceTransformer
    normaliser: Normaliser
    features: list[str]
    return_scale: float
    history: list[dict[str, float]]

    @property
    def config(self) -> DeepConfig:
        return self.network.config

    def sequences(self, frames: Mapping[str, pd.DataFrame]) -> SequenceRows:
        arrays = {
            s: self.normaliser.transform(f[self.features].to_numpy(float))
            for s, f in frames.items()
        }
        return SequenceRows(arrays, self.config.seq_len)

    def mc_samples(
        self, x: np.ndarray | torch.Tensor, *, n_samples: int = 20, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """The raw MC-dropout samples, each (n_samples, batch): p_up, mu, sigma2.

        Samples are stacked on the batch dimension, so one forward call computes all of
        them; the masks come from a private generator seeded with `seed` (same seed, same
        numbers) and neither the module's mode nor the global RNG is touched.
        """
        if n_samples < 1:
            raise ValueError("n_samples must be >= 1")
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=_device())
        batch = x.shape[0]
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
        with torch.no_grad():
            logit, mu, log_sigma = self.network(x.repeat(n_samples, 1, 1), mc_generator=generator)
        prob = torch.sigmoid(logit).reshape(n_samples, batch).cpu().numpy().astype(np.float64)
        mu = mu.reshape(n_samples, batch).cpu().numpy().astype(np.float64) * self.return_scale
        sigma2 = (
            np.exp(2 * log_sigma.reshape(n_samples, batch).cpu().numpy().astype(np.float64))
            * self.return_scale**2
        )
        return {"p_up": prob, "mu": mu, "sigma2": sigma2}

    def predict_mc(
        self, x: np.ndarray | torch.Tensor, *, n_samples: int = 20, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """MC-dropout in one batched pass: p_up, mu, epistemic and aleatoric variance.

        `x` is (batch, seq_len, n_features); see `mc_samples` for the draw.
        """
        return summarise_mc(self.mc_samples(x, n_samples=n_samples, seed=seed))

    def latest_window(self, frame: pd.DataFrame) -> np.ndarray:
        """(1, seq_len, n_features) input ending at the newest row (left-padded if short)."""
        values = self.normaliser.transform(frame[self.features].to_numpy(float))
        seqs = SequenceRows({"latest": values}, self.config.seq_len)
        return seqs.gather(seqs.starts("latest", np.array([len(values) - 1])))

    def predict_rows(
        self,
        frames: Mapping[str, pd.DataFrame],
        rows: pd.DataFrame,
        *,
        n_samples: int = 20,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> pd.DataFrame:
        """MC predictions for the rows (index timestamp, column symbol) of a pooled frame."""
        seqs = self.sequences(frames)
        starts = row_starts(seqs, frames, rows)
        parts = [
            pd.DataFrame(
                self.predict_mc(
                    seqs.gather(starts[lo : lo + batch_size]), n_samples=n_samples, seed=seed + lo
                )
            )
            for lo in range(0, len(starts), batch_size)
        ]
        out = (
            pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(MC_OUTPUTS))
        )
        out.index = rows.index
        out.insert(0, "symbol", rows["symbol"].to_numpy())
        return out

    def save(self, path: Path | str, meta: dict[str, Any]) -> Path:
        payload = {
            "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "config": asdict(self.config),
            "normaliser": asdict(self.normaliser),
            "features": self.features,
            "return_scale": self.return_scale,
            "history": self.history,
        }
        # through a buffer: saved to a path, torch names the archive after the (random) temp
        # file, and the same weights would hash differently, breaking content-addressed ids
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        write_sidecar(
            path, {**meta, "kind": "deep", "features": self.features, "config": asdict(self.config)}
        )
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> DeepModel:
        read_sidecar(path)  # verifies the sha256 before unpickling anything
        payload = torch.load(path, map_location=_device(), weights_only=True)
        network = SequenceTransformer(DeepConfig(**payload["config"])).to(_device())
        network.load_state_dict(payload["state_dict"])
        return cls(
            network,
            Normaliser(**payload["normaliser"]),
            list(payload["features"]),
            float(payload["return_scale"]),
            list(payload["history"]),
        )


def _loss(model: SequenceTransformer, x, y, r, weight: float) -> torch.Tensor:
    """BCE on direction + weighted Gaussian NLL on the (scaled) forward return."""
    logit, mu, log_sigma = model(x)
    bce = nn.functional.binary_cross_entropy_with_logits(logit, y)
    nll = (log_sigma + 0.5 * (r - mu) ** 2 * torch.exp(-2 * log_sigma)).mean()
    return bce + weight * nll


def train_deep(
    frames: Mapping[str, pd.DataFrame],
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    *,
    features: list[str],
    seed: int,
    label: str = "label_direction",
    target: str = "fwd_ret",
    **overrides: Any,
) -> DeepModel:
    """Train on `train_rows`, keep the epoch with the best validation loss.

    `frames` are the per-symbol feature frames (the sequences' history); `train_rows`
    and `val_rows` are pooled rows (index timestamp, column symbol) with labels.
    Shows a bar per epoch with the train and validation losses on a terminal only
    (`disable=None`: off when stderr is not a TTY), so executed-notebook reports and CI
    logs do not fill with progress lines and JupyterLab needs no widget library; the
    losses per epoch are in `history` and the report's loss curves.
    """
    if train_rows.empty or val_rows.empty:
        raise ValueError("train and validation windows must both have rows")
    config = DeepConfig(n_features=len(features), **overrides)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    normaliser = Normaliser.fit(train_rows[features].to_numpy(float))
    scale = float(np.nanstd(train_rows[target]))
    return_scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    arrays = {s: normaliser.transform(f[features].to_numpy(float)) for s, f in frames.items()}
    seqs = SequenceRows(arrays, config.seq_len)
    device = _device()

    def tensors(rows: pd.DataFrame):
        starts = row_starts(seqs, frames, rows)
        y = torch.as_tensor(rows[label].to_numpy(np.float32))
        r = torch.as_tensor((rows[target] / return_scale).to_numpy(np.float32))
        return starts, y, r

    train_starts, train_y, train_r = tensors(train_rows)
    if len(train_starts) > config.max_train_samples:  # keep epochs CPU-sized
        keep = np.sort(rng.choice(len(train_starts), config.max_train_samples, replace=False))
        train_starts, train_y, train_r = train_starts[keep], train_y[keep], train_r[keep]
    val_starts, val_y, val_r = tensors(val_rows)
    network = SequenceTransformer(config).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=1e-4)

    def batch(starts, y, r, idx):
        x = torch.from_numpy(seqs.gather(starts[idx])).to(device)
        return x, y[idx].to(device), r[idx].to(device)

    history: list[dict[str, float]] = []
    best_state, best_val, stale = None, float("inf"), 0
    progress = tqdm(range(config.epochs), desc="train_deep", unit="epoch", disable=None)
    for epoch in progress:
        network.train()
        order = rng.permutation(len(train_starts))
        losses = []
        for lo in range(0, len(order), config.batch_size):
            loss = _loss(
                network,
                *batch(train_starts, train_y, train_r, order[lo : lo + config.batch_size]),
                config.return_loss_weight,
            )
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            losses.append(loss.item())
        network.eval()
        with torch.no_grad():
            val_losses = [
                _loss(
                    network,
                    *batch(
                        val_starts, val_y, val_r, np.arange(lo, min(lo + 2048, len(val_starts)))
                    ),
                    config.return_loss_weight,
                ).item()
                * min(2048, len(val_starts) - lo)
                for lo in range(0, len(val_starts), 2048)
            ]
        val_loss = float(np.sum(val_losses) / len(val_starts))
        history.append(
            {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss}
        )
        progress.set_postfix(train=f"{np.mean(losses):.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_val - 1e-5:
            best_val, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    return DeepModel(network, normaliser, list(features), return_scale, history)
