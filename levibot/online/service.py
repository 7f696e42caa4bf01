"""The serving logic without HTTP: predictions, canary routing, guards, paper books, logs.

`serving/` translates HTTP to calls on one `PredictionService` per worker process; the
replay and the tests call it directly. Shared state lives in files (kill-switch, paper
books, logs, registry), so every worker process sees the same thing.

Per-bar cache: a model's output for (model id, endpoint, symbol, bar, n_samples) is
computed once and reused until the next bar, so a request after the first costs a
dictionary look-up. MC-dropout is drawn once per (release, symbol, bar) with the largest
allowed sample count; a request for n samples summarises the first n of that draw, so a
client sweeping n_samples costs a mean over at most 200 numbers per value, not a
forward pass, and the cache holds at most MAX_N_SAMPLES answers per release and bar.
The paper books act once per new bar on the release's policy model
(the calibrated LightGBM P(up), on which the thresholds were swept), whatever endpoint
was called.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from levibot.calendar import calendar_named
from levibot.io import CorruptFileError
from levibot.online.audit import AuditLog
from levibot.online.bar_cache import BarCache
from levibot.online.clock import Clock, system_clock
from levibot.online.feed import FeatureFeed
from levibot.online.health import feature_staleness, health_report
from levibot.online.killswitch import KillSwitch
from levibot.online.layout import ENDPOINTS
from levibot.online.models import LoadedRelease
from levibot.online.paper import PaperBook
from levibot.online.readiness import NeedsWork
from levibot.online.routing import CANARY, PROD, assign_variant
from levibot.online.shadow_log import ShadowLog
from levibot.online.snapshot import Snapshot, SnapshotWatcher
from levibot.policy import signal_for
from levibot.registry import signal_confidence, update_canary_policy
from levibot.settings import Settings
from levibot.state.paths import Paths
from levibot.symbols import UnknownSymbolError

log = logging.getLogger("levibot.online")
KINDS = ("lgbm", "deep", "ensemble")
POLICY_KIND = "lgbm"
MAX_N_SAMPLES = 200
MC_CONCURRENCY = 2  # simultaneous MC-dropout draws per process: one per core of the target


class ServiceUnavailable(RuntimeError):
    """The server cannot predict (no prod model, no features); a 503 for the API."""


@dataclass(frozen=True)
class BarView:
    """The newest rows of a symbol plus what every request derives from them, once."""

    rows: pd.DataFrame
    bar: pd.Timestamp
    bar_iso: str
    close: float
    closed_at_ns: int  # bar close time, for staleness without Timestamp arithmetic


def _output_key(
    snapshot: Snapshot, release: LoadedRelease, kind: str, symbol: str, bar: pd.Timestamp,
    n_samples: int,
) -> tuple:  # fmt: skip
    """The per-bar cache key of a model output (the symbol third: see BarCache.roll)."""
    return (release.model_id, kind, symbol, bar, n_samples if kind != "lgbm" else 0,
            snapshot.digest)  # fmt: skip


def _mc_seed(symbol: str, bar_time: pd.Timestamp) -> int:
    """The same MC-dropout draw in every worker for a (symbol, bar)."""
    return zlib.crc32(f"{symbol}|{bar_time.isoformat()}".encode())


class PredictionService:
    """One per process; thread-safe enough for FastAPI's thread pool (state is files)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        seed: int = 0,
        reload_every: float = 0.5,
    ) -> None:
        """`reload_every`: seconds between looks at the registry files (0 = every request,
        which a replay uses so a file written before a bar is seen on that bar)."""
        self.settings = settings
        self.clock = clock
        self.paths = Paths.of(settings)
        self.store = self.paths.store()
        self.calendar = calendar_named(settings.market_calendar)
        self.feed = FeatureFeed(self.store, clock=clock, calendar=self.calendar)
        self.watcher = SnapshotWatcher(self.paths, check_every=reload_every)
        self.shadow = ShadowLog(self.paths.logs, clock=clock)
        self.kill_switch = KillSwitch(self.paths.kill_switch, clock=clock)
        self.audit = AuditLog(self.paths.audit, clock=clock)
        self.books = {
            role: PaperBook(self.paths.paper_book(role), label=role, clock=clock)
            for role in ("prod", "candidate")
        }
        self._cache = BarCache()
        self._mc_slots = threading.BoundedSemaphore(MC_CONCURRENCY)
        self._acted: dict[tuple[str, str, str], tuple[pd.Timestamp, bool]] = {}
        self._views: dict[str, BarView] = {}
        self._rng = random.Random(seed)
        self.started = time.time()

    # ------------------------------------------------------------------ predictions

    def snapshot(self) -> Snapshot:
        return self.watcher.current()

    def check_symbol(self, snapshot: Snapshot, symbol: str) -> str:
        if snapshot.prod is None:
            raise ServiceUnavailable(f"no prod model loaded ({self.watcher.status})")
        if symbol not in snapshot.symbols:
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r}; served symbols: {snapshot.symbols}"
            )
        return symbol

    def _view(self, symbol: str, snapshot: Snapshot, *, read: bool = True) -> BarView:
        need = max(r.history_needed for r in (snapshot.prod, snapshot.candidate) if r)
        try:
            rows = self.feed.latest(symbol, need, read=read)
        except FileNotFoundError as exc:
            raise ServiceUnavailable(f"no features stored for {symbol}: run the ingest") from exc
        if rows.empty:
            raise ServiceUnavailable(f"no features stored for {symbol}: run the ingest")
        cached = self._views.get(symbol)
        now_ns = self.clock().value
        if cached is not None and cached.rows is rows and cached.closed_at_ns <= now_ns:
            return cached  # the feed hands out the same frame while the file is unchanged
        closed = (rows.index + self.store.bar_length) <= pd.Timestamp(now_ns, tz="UTC")
        if not closed.all():  # a bar still open at "now" is not usable yet
            rows = rows.loc[closed]
            if rows.empty:
                raise ServiceUnavailable(f"no closed bar for {symbol} yet")
        bar = rows.index[-1]
        view = BarView(rows, bar, bar.isoformat(), float(rows["close"].iloc[-1]),
                       (bar + self.store.bar_length).value)  # fmt: skip
        self._views[symbol] = view
        return view

    def _output(
        self, snapshot: Snapshot, release: LoadedRelease, kind: str, symbol: str,
        view: BarView, n_samples: int,
    ) -> dict[str, Any]:  # fmt: skip
        bar, rows = view.bar, view.rows
        self._cache.roll(symbol, bar)  # new bar: forget the old bar's outputs
        key = _output_key(snapshot, release, kind, symbol, bar, n_samples)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if kind == "lgbm":
            out: dict[str, Any] = {"p_up": release.predict_lgbm(rows)}
        elif kind == "deep":
            samples = self._mc_draw(snapshot, release, symbol, view)
            out = release.deep_from_samples(samples, n_samples)
        else:
            lgbm = self._output(snapshot, release, "lgbm", symbol, view, n_samples)
            deep = self._output(snapshot, release, "deep", symbol, view, n_samples)
            w = snapshot.weights
            out = {
                "p_up": w["lgbm"] * lgbm["p_up"] + w["deep"] * deep["p_up"],
                "components": {"lgbm": lgbm["p_up"], "deep": deep["p_up"]},
                "weights": dict(w),
                "epistemic": deep["epistemic"],
                "aleatoric": deep["aleatoric"],
                "mu": deep["mu"],
            }
        return self._cache.put(key, out)

    def _mc_draw(
        self, snapshot: Snapshot, release: LoadedRelease, symbol: str, view: BarView
    ) -> dict[str, Any]:
        """The release's MC-dropout draw for this bar (MAX_N_SAMPLES samples, cached)."""
        key = _output_key(snapshot, release, "mc_draw", symbol, view.bar, MAX_N_SAMPLES)
        draw = self._cache.get(key)
        if draw is None:
            with self._mc_slots:  # CPU-bound torch: at most MC_CONCURRENCY at once
                draw = self._cache.get(key)  # drawn by another thread while this one waited
                if draw is None:
                    draw = release.deep_samples(
                        view.rows, n_samples=MAX_N_SAMPLES, seed=_mc_seed(symbol, view.bar)
                    )
                    self._cache.put(key, draw)
        return draw

    def canary_open(self, snapshot: Snapshot) -> tuple[bool, str]:
        """Whether the candidate may get traffic, and why not."""
        canary, candidate = snapshot.canary, snapshot.candidate
        limits = canary.thresholds
        if candidate is None:
            return False, "no candidate"
        if not canary.enabled:
            return False, "canary disabled"
        if candidate.ece() > limits.ece.tighten:
            return (
                False,
                f"candidate ECE {candidate.ece():.3f} > {limits.ece.tighten} (ece.tighten)",
            )
        sharpe = candidate.entry.models[POLICY_KIND].metrics.get("policy_sharpe")
        if sharpe is not None and sharpe < limits.canary_min_sharpe:
            return (
                False,
                f"candidate test Sharpe {sharpe:.2f} < {limits.canary_min_sharpe} "
                "(canary_min_sharpe)",
            )
        return True, "open"

    def _decide(
        self,
        snapshot: Snapshot,
        release: LoadedRelease,
        p_up: float,
        staleness: float,
        position_open: bool,
        killed: bool,
    ) -> tuple[str, str | None]:
        """The signal after the guards, and the reason when HOLD is forced.

        The kill-switch blocks new positions but lets an open one exit: stopping trading
        must not trap a position the model wants out of.
        """
        wanted = signal_for(p_up, position_open, release.policy)
        if killed:
            return (wanted, None) if wanted == "EXIT" else ("HOLD", "kill_switch")
        if staleness > snapshot.canary.thresholds.max_staleness_sec:
            return "HOLD", "stale_features"
        if signal_confidence(p_up) < snapshot.canary.min_confidence:
            return "HOLD", "low_confidence"
        return wanted, None

    def _paper(
        self,
        snapshot: Snapshot,
        release: LoadedRelease,
        symbol: str,
        view: BarView,
        staleness: float,
        killed: bool,
    ) -> bool:
        """Let the release's book act once on this bar; returns "was a position open
        before this bar?" -- the state every signal of this bar is decided against.

        The decision is made inside the book's lock from its real state (another worker
        may have acted on the last bar), and is idempotent across workers.
        """
        memo = (release.role, release.model_id, symbol)
        cached = self._acted.get(memo)
        if cached is not None and cached[0] is view.bar:
            return cached[1]
        p_up = self._output(snapshot, release, POLICY_KIND, symbol, view, 0)["p_up"]
        book = self.books[release.role]
        try:
            book.on_bar(
                symbol, view.bar, view.close,
                lambda was_open: self._decide(
                    snapshot, release, p_up, staleness, was_open, killed
                )[0],
                policy=release.policy, model_id=release.model_id,
                allow_entry=not killed,
                record_trade=self.shadow.log_trade, trade_recorded=self.shadow.has_trade,
            )  # fmt: skip
            action = book.last_action(symbol) or {}
            if action.get("bar") == view.bar_iso:
                was_open = bool(action["was_open"])
            else:  # a book written before actions were recorded: judge from positions
                was_open = symbol in book.positions()
        except (CorruptFileError, OSError) as exc:  # paper trading degrades; predictions go on
            log.error("paper book %s unusable: %s", release.role, exc)
            was_open = False
        self._acted[memo] = (view.bar, was_open)
        return was_open

    def _ready(self, snapshot: Snapshot, kind: str, symbol: str, view: BarView, n: int) -> bool:
        """Both releases' outputs for this bar are cached and their books have acted on it:
        the request needs only memory, a stat or two and a log append."""
        for release in (snapshot.prod, snapshot.candidate):
            if release is None:
                continue
            acted = self._acted.get((release.role, release.model_id, symbol))
            if acted is None or acted[0] is not view.bar:
                return False
            for needed in {kind, POLICY_KIND}:
                key = _output_key(snapshot, release, needed, symbol, view.bar, n)
                if self._cache.get(key) is None:
                    return False
        return True

    def predict(
        self, symbol: str, kind: str, *, client_id: str | None = None, n_samples: int = 20,
        request_id: str | None = None, ready_only: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """Serve one prediction; shadow-log both variants; let the paper books act.

        `ready_only`: answer only if nothing may block (see `NeedsWork`), for a caller on
        an event loop; otherwise NeedsWork is raised before any side effect.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; use one of {KINDS}")
        if not 1 <= n_samples <= MAX_N_SAMPLES:
            raise ValueError(f"n_samples must be between 1 and {MAX_N_SAMPLES}, got {n_samples}")
        snapshot = self.watcher.current(load=not ready_only)
        self.check_symbol(snapshot, symbol)
        view = self._view(symbol, snapshot, read=not ready_only)
        if ready_only and not self._ready(snapshot, kind, symbol, view, n_samples):
            raise NeedsWork(f"{symbol}: outputs or paper actions of this bar not done yet")
        staleness = self._staleness_of(view)
        is_open, _why = self.canary_open(snapshot)
        variant = assign_variant(
            fraction=snapshot.canary.fraction,
            canary_open=is_open,
            client_id=client_id,
            rng=self._rng,
        )
        releases = {PROD: snapshot.prod, CANARY: snapshot.candidate}
        killed = self.kill_switch.is_on()  # one read per request, shared by both releases
        request_id = request_id or uuid.uuid4().hex
        served: dict[str, Any] | None = None
        lines = []
        for name, release in releases.items():
            if release is None:
                continue
            was_open = self._paper(snapshot, release, symbol, view, staleness, killed)
            out = self._output(snapshot, release, kind, symbol, view, n_samples)
            signal, reason = self._decide(
                snapshot, release, out["p_up"], staleness, was_open, killed
            )
            is_served = name == variant
            lines.append({
                "request_id": request_id, "endpoint": ENDPOINTS[kind], "symbol": symbol,
                "bar_time": view.bar_iso, "variant": name, "role": release.role,
                "model_id": release.model_id, "p_up": out["p_up"], "signal": signal,
                "reason": reason, "served": is_served,
            })  # fmt: skip
            if is_served:
                served = self._response(snapshot, release, name, kind, symbol, view, out, signal,
                                        reason, staleness, request_id)  # fmt: skip
        self.shadow.log_predictions(lines)  # served + shadow line in one locked write
        assert served is not None  # prod always exists past check_symbol
        return served

    def _staleness_of(self, view: BarView) -> float:
        """Seconds since the view's bar closed (market-open seconds on a calendar)."""
        now = self.clock()
        if self.calendar.always_open:
            return (now.value - view.closed_at_ns) / 1e9
        return self.calendar.open_seconds(pd.Timestamp(view.closed_at_ns, tz="UTC"), now)

    def act_on_closed_bars(self) -> dict[str, str]:
        """Let both paper books act on every symbol's newest closed bar (once per bar).

        What the bar clock calls (the server's background task, live): a book's P&L
        must follow the bars, not whichever symbols clients happened to ask about.
        Returns per symbol "acted" (or already acted on), or why it could not.
        """
        snapshot = self.snapshot()
        if snapshot.prod is None:
            return {}
        killed = self.kill_switch.is_on()
        out = {}
        for symbol in snapshot.symbols:  # one symbol's trouble must not stop the others
            try:
                view = self._view(symbol, snapshot)
                staleness = self._staleness_of(view)
                for release in (snapshot.prod, snapshot.candidate):
                    if release is not None:
                        self._paper(snapshot, release, symbol, view, staleness, killed)
                out[symbol] = "acted"
            except (ServiceUnavailable, ValueError, OSError) as exc:
                out[symbol] = f"{type(exc).__name__}: {exc}"
        return out

    def _response(self, snapshot, release, variant, kind, symbol, view, out, signal, reason,
                  staleness, request_id) -> dict[str, Any]:  # fmt: skip
        p_up = float(out["p_up"])
        policy = release.policy
        response = {
            "symbol": symbol,
            "bar_time": view.bar_iso,
            "p_up": p_up,
            "p_down": 1.0 - p_up,
            "confidence": signal_confidence(p_up),
            "signal": signal,
            "reason": reason,
            "entry_threshold": policy.entry_threshold,
            "exit_threshold": policy.exit_threshold,
            "model_id": release.model_id,
            "model_kind": kind,
            "variant": variant,
            "staleness_sec": staleness,
            "ece": release.ece("deep" if kind == "deep" else "lgbm"),
            "request_id": request_id,
        }
        for extra in ("mu", "epistemic", "aleatoric", "weights", "components"):
            if extra in out:
                response[extra] = out[extra]
        return response

    # ------------------------------------------------------------------ status + admin

    def staleness(self, snapshot: Snapshot | None = None) -> dict[str, float | None]:
        """Seconds since each symbol's newest bar closed; None when it has no features."""
        return feature_staleness(self, snapshot or self.snapshot())

    def health(self) -> dict[str, Any]:
        """What /healthz answers (see `levibot.online.health`)."""
        return health_report(self)

    def set_kill_switch(self, enabled: bool, *, actor: str, reason: str = "") -> dict[str, Any]:
        state = self.kill_switch.set(enabled, actor=actor, reason=reason or "api")
        self.audit.record(actor, "kill_switch", enabled=enabled, reason=reason)
        return {"kill_switch": state.enabled, "changed_at": str(state.changed_at)}

    def set_canary(
        self, *, enabled: bool | None, fraction: float | None, actor: str
    ) -> dict[str, Any]:
        changes = {k: v for k, v in (("enabled", enabled), ("fraction", fraction)) if v is not None}
        policy = update_canary_policy(self.paths.canary_policy, **changes)
        self.audit.record(actor, "canary", **changes)
        self.watcher.refresh(force=True)
        return {"enabled": policy.enabled, "fraction": policy.fraction}

    def reload(self, *, actor: str) -> dict[str, Any]:
        status = self.watcher.refresh(force=True)
        self.audit.record(actor, "registry_reload", status=status)
        return {"registry_status": status}
