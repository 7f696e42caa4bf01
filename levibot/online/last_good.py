"""The last registry snapshot a server worker loaded whole, kept on disk for its siblings.

A worker that starts (or restarts) while the registry files are broken, or while a
release's artifact has been deleted, has no in-memory "last good" snapshot; without this
store it would answer 503 while its siblings go on serving from memory. So whenever a
worker loads a snapshot whole, it saves copies of the three registry-side files and hard
links to the verified artifacts (a copy where a link is impossible) into
``last_good/<digest>/``, laid out like the registry folder, and points the pointer file
(`Paths.last_good_pointer`) at it. A worker with nothing better loads that folder, with
the same verification as the live files, and says so in its status, so every worker
serves the same release or reports the same degraded state.

Folders are built under a temporary name and renamed into place (atomic; a sibling that
built the same digest first wins), the pointer is written atomically, and only the
newest `KEEP` folders are kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from levibot.io import CorruptFileError, read_json, write_json_atomic
from levibot.registry import ModelEntry

KEEP = 3
ABANDONED_BUILD_SEC = 3600.0  # a build takes milliseconds; an hour-old one is dead


class LastGoodStore:
    """Saved snapshots under `root`, the newest named by `pointer`."""

    def __init__(self, root: Path, pointer: Path) -> None:
        self.root = Path(root)
        self.pointer = Path(pointer)

    def save(self, digest: str, files: Iterable[Path], entries: Iterable[ModelEntry]) -> Path:
        """Persist `files` (registry, canary policy, weights; missing ones skipped) and the
        artifacts of `entries` (paths relative to the registry folder) under `digest`."""
        files = [Path(f) for f in files]
        target = self.root / digest
        if not target.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
            try:
                base = files[0].parent
                for file in files:
                    if file.exists():
                        shutil.copy2(file, build / file.name)
                for folder in _artifact_folders(entries):
                    for file in (base / folder).iterdir():  # artifacts and their sidecars
                        if file.is_file():
                            _link_or_copy(file, build / folder / file.name)
                os.rename(build, target)
            except OSError:
                shutil.rmtree(build, ignore_errors=True)
                if not target.is_dir():  # not merely a sibling that renamed first
                    raise
        write_json_atomic(self.pointer, {"digest": digest})
        self._prune(keep={digest})
        return target

    def current(self) -> Path | None:
        """The newest saved folder, or None (nothing saved, or an unreadable pointer)."""
        try:
            digest = read_json(self.pointer).get("digest")
        except (OSError, CorruptFileError, AttributeError):
            return None
        if not isinstance(digest, str) or not digest.isalnum():
            return None
        folder = self.root / digest
        return folder if folder.is_dir() else None

    def _prune(self, keep: set[str]) -> None:
        """Drop all but the newest KEEP folders, and builds abandoned by a killed worker."""
        now = time.time()
        folders = []
        for path in self.root.iterdir():
            if not path.is_dir():
                continue
            if path.name.startswith(".build-"):
                if now - path.stat().st_mtime > ABANDONED_BUILD_SEC:
                    shutil.rmtree(path, ignore_errors=True)
            else:
                folders.append(path)
        folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in folders[KEEP:]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def _artifact_folders(entries: Iterable[ModelEntry]) -> set[Path]:
    """Registry-relative folders holding the entries' artifacts (absolute paths lie
    outside the registry folder and are loaded from where they are)."""
    return {
        Path(ref.path).parent
        for entry in entries
        for _, ref in entry.artifact_refs()
        if not Path(ref.path).is_absolute()
    }


def _link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
