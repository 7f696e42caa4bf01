"""The last registry snapshot a server worker loaded whole, kept on disk for its siblings.

A worker that starts (or restarts) while the registry files are broken, or while a
release's artifact has been deleted, has no in-memory "last good" snapshot; without this
store it would answer 503 while its siblings go on serving from memory. So whenever a
worker loads a snapshot whole, it saves copies of the three registry-side files and of
the verified artifacts into ``last_good/<digest>/``, laid out like the registry folder,
and points the pointer file (`Paths.last_good_pointer`) at it. A worker with nothing
better loads that folder, with the same verification as the live files, and says so in
its status, so every worker serves the same release or reports the same degraded state.

Folders are built under a temporary name and renamed into place (atomic; a sibling that
built the same digest first wins), the pointer is written atomically, and only the
newest `KEEP` folders are kept.
"""

from __future__ import annotations

import hashlib
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

    def save(
        self, digest: str, files: Iterable[Path], entries: Iterable[ModelEntry]
    ) -> Path | None:
        """Persist `files` (registry, canary policy, weights; missing ones skipped) and the
        artifacts of `entries` (paths relative to the registry folder) under `digest`.

        The copies are checked against `digest`: a file rewritten between the caller's
        load and this copy makes a folder whose content is not what was loaded, so it is
        dropped (None) and the next whole load saves again.
        """
        files = [Path(f) for f in files]
        target = self.root / digest
        if not target.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
            try:
                if not self._build(build, digest, files, entries):
                    shutil.rmtree(build, ignore_errors=True)
                    return None
                os.rename(build, target)
            except OSError:
                shutil.rmtree(build, ignore_errors=True)
                if not target.is_dir():  # not merely a sibling that renamed first
                    raise
        write_json_atomic(self.pointer, {"digest": digest})
        self._prune(keep={digest})
        return target

    @staticmethod
    def _build(build: Path, digest: str, files: list[Path], entries: Iterable[ModelEntry]) -> bool:
        base = files[0].parent
        for file in files:
            if file.exists():
                shutil.copy2(file, build / file.name)
        if files_digest([build / file.name for file in files]) != digest:
            return False
        for folder in _artifact_folders(entries):
            (build / folder).mkdir(parents=True, exist_ok=True)
            for file in (base / folder).iterdir():  # artifacts and their sidecars
                if file.is_file():  # copies: a link would share a later in-place change
                    shutil.copy2(file, build / folder / file.name)
        return True

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
        """Drop all but the newest KEEP folders, and builds abandoned by a killed worker;
        siblings prune at the same time, so a folder may vanish under this loop."""
        pointed = self.current()
        keep = keep | ({pointed.name} if pointed is not None else set())
        now = time.time()
        folders = []
        for path in list(self.root.iterdir()):
            try:
                if not path.is_dir():
                    continue
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if path.name.startswith(".build-"):
                if now - mtime > ABANDONED_BUILD_SEC:
                    shutil.rmtree(path, ignore_errors=True)
            else:
                folders.append((mtime, path))
        folders.sort(reverse=True)
        for _, old in folders[KEEP:]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def files_digest(files: Iterable[Path]) -> str:
    """sha256 over the files' bytes in order (a missing file counts as '<missing>'): the
    content digest a snapshot and its saved copy are named by."""
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(Path(path).read_bytes())
        except FileNotFoundError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def _artifact_folders(entries: Iterable[ModelEntry]) -> set[Path]:
    """Registry-relative folders holding the entries' artifacts (absolute paths lie
    outside the registry folder and are loaded from where they are)."""
    return {
        Path(ref.path).parent
        for entry in entries
        for _, ref in entry.artifact_refs()
        if not Path(ref.path).is_absolute()
    }
