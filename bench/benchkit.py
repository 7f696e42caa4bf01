"""Helpers the bench scripts share (imported as a sibling: `python bench/<script>.py`).

Process memory from /proc (a process tree summed, so a server that forks workers is
measured whole), a stage-local peak (`reset_peak`), a percentile, and the "new bar"
a serving benchmark appends to make every per-bar cache entry stale.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from levibot.data.store import FeatureStore


def append_bar(store: FeatureStore, symbol: str) -> None:
    """A new bar (a copy of the last one, one bar later): makes every cache entry stale."""
    frame = store.read(symbol)
    new = frame.iloc[[-1]].copy()
    new.index = new.index + store.bar_length
    new.index.name = "timestamp"
    store.write(symbol, pd.concat([frame, new]))


def status_mb(field: str, pid: int | str = "self") -> float:
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM, ...) in MB; NaN if absent."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB."""
    return status_mb("VmRSS", pid)


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant still alive (via /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def tree_mb(pid: int, field: str = "VmRSS") -> float:
    """A /proc status field summed over `pid`'s process tree, in MB (for VmHWM an upper
    bound of the tree's peak: the children need not peak at the same moment)."""
    values = [status_mb(field, p) for p in process_tree(pid)]
    return sum(v for v in values if v == v)


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS, so a later VmHWM is the peak of
    what ran since (Linux >= 4.0: clear_refs 5); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
