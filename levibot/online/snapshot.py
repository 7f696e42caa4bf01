"""Hot reload: the registry, canary policy and ensemble weights as one swappable snapshot.

The watcher notices a changed file by (mtime, size) and then by content hash, loads a
complete new snapshot and swaps it in with one assignment, so in-flight requests keep
the snapshot they started with. A corrupt or half-written file, or a missing or
sha-mismatched artifact (of a new release or of one kept from the last snapshot: every
load re-verifies them all), is refused: the last good snapshot stays, and the status says
``degraded: <reason>``. A worker with no snapshot in memory (just started) falls back to
the last good snapshot a sibling saved (`levibot.online.last_good`), so a restarted
worker serves what its siblings serve.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from levibot.online.last_good import LastGoodStore, files_digest
from levibot.online.models import LoadedRelease, load_release
from levibot.online.readiness import NeedsWork
from levibot.registry import CanaryPolicy, load_canary_policy, load_registry, verify_artifacts
from levibot.state.paths import Paths
from levibot.state.weights import DEFAULT_WEIGHTS, load_weights

log = logging.getLogger("levibot.online")
FALLBACK_NOTE = "; serving the last good registry a worker saved"


@dataclass(frozen=True)
class Snapshot:
    """Everything a request needs from the registry side, consistent with itself."""

    prod: LoadedRelease | None = None
    candidate: LoadedRelease | None = None
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    digest: str = ""

    @property
    def symbols(self) -> list[str]:
        return list(self.prod.entry.symbols) if self.prod else []


class SnapshotWatcher:
    """Keeps the current snapshot fresh; cheap to call on every request."""

    def __init__(self, paths: Paths, *, check_every: float = 0.5) -> None:
        self.files = (paths.registry, paths.canary_policy, paths.ensemble_weights)
        self.last_good = LastGoodStore(paths.last_good, paths.last_good_pointer)
        self.source = "live"  # or "last_good": the files a sibling saved
        self.check_every = check_every
        self.snapshot = Snapshot()
        self.status = "degraded: registry not loaded yet"
        self.loaded_at: float | None = None
        self._stat_key: tuple | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def current(self, *, load: bool = True) -> Snapshot:
        """The snapshot, after a look at the files when one is due. With `load` false a
        due look only stats them, and a change raises NeedsWork (loading blocks)."""
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            if load:
                self.refresh()
            elif self._stat_key is None or self._stat() != self._stat_key:
                raise NeedsWork("registry files changed")
            else:
                self._checked = now  # what refresh() would do for unchanged files
        return self.snapshot

    def _stat(self) -> tuple:
        out = []
        for path in self.files:
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _digest(self) -> str:
        return files_digest(self.files)

    def refresh(self, *, force: bool = False) -> str:
        """Reload when a file changed; returns the status ('ok' or 'degraded: ...')."""
        with self._lock:
            self._checked = time.monotonic()
            key = self._stat()
            if not force and key == self._stat_key:
                return self.status
            self._stat_key = key
            try:
                digest = self._digest()
                if force or digest != self.snapshot.digest or self.source != "live":
                    self.snapshot = self._load(self.files, digest)
                    self.loaded_at = time.time()
                    self.source = "live"
                    self._save_last_good()
                # also reached when files return to the last good content after a bad write
                self.status = "ok" if self.snapshot.prod else "degraded: registry has no prod model"
            except Exception as exc:  # any failure keeps the last good snapshot
                self.status = f"degraded: {type(exc).__name__}: {exc}"
                self._stat_key = None  # a file caught mid-write: look again next time
                if self.snapshot.prod is None:
                    self._fall_back(self.status)
                elif self.source == "last_good":
                    self.status += FALLBACK_NOTE
            return self.status

    def _save_last_good(self) -> None:
        """Share a whole snapshot with sibling workers; failing to is logged, not fatal."""
        if self.snapshot.prod is None:
            return
        entries = [r.entry for r in (self.snapshot.prod, self.snapshot.candidate) if r]
        try:
            self.last_good.save(self.snapshot.digest, self.files, entries)
        except OSError as exc:
            log.error("cannot save the last good snapshot: %s", exc)

    def _fall_back(self, reason: str) -> None:
        """Nothing in memory: load the snapshot a sibling saved, verified like live files."""
        folder = self.last_good.current()
        if folder is None:
            return
        files = tuple(folder / f.name for f in self.files)
        try:
            self.snapshot = self._load(files, folder.name)
        except Exception as exc:  # the saved copy is no better: stay empty
            log.error("last good snapshot unusable: %s", exc)
            return
        self.loaded_at = time.time()
        self.source = "last_good"
        self.status = reason + FALLBACK_NOTE

    def _load(self, files: tuple[Path, ...], digest: str) -> Snapshot:
        registry_file, canary_file, weights_file = files
        registry = load_registry(registry_file, missing_ok=True)
        base = registry_file.parent
        previous = {r.model_id: r for r in (self.snapshot.prod, self.snapshot.candidate) if r}

        def release(entry: Any, role: str) -> LoadedRelease | None:
            if entry is None:
                return None
            reused = previous.get(entry.id)
            if reused is not None and reused.entry == entry:
                verify_artifacts(entry, base)  # still on disk as registered, or refused
                return LoadedRelease(role, entry, reused.lgbm, reused.deep, reused.calibrators)
            return load_release(entry, base, role)

        return Snapshot(
            prod=release(registry.prod, "prod"),
            candidate=release(registry.candidate, "candidate"),
            canary=load_canary_policy(canary_file),
            weights=load_weights(weights_file),
            digest=digest,
        )
