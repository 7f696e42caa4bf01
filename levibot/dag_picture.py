"""The pipeline's task graph as a PNG, offline.

`ploomber plot` needs pygraphviz (a C build against graphviz headers) for a PNG, and its
HTML backend loads JavaScript from the internet, so it is blank offline. The graph is
small, so it is drawn here with matplotlib: one column per generation (a task sits one
column right of its latest upstream), tasks of a column stacked, an arrow per edge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest.mock import patch

import matplotlib.pyplot as plt

from levibot.io import atomic_write
from levibot.operations import PIPELINE_FILE, PLOOMBER_ENV

Graph = Mapping[str, Sequence[str]]  # task -> its upstream tasks


def dag_graph(dag: Any) -> dict[str, list[str]]:
    """Task -> sorted upstream task names of a Ploomber DAG, in the DAG's order."""
    return {name: sorted(dag[name].upstream) for name in dag}


def pipeline_graph(pipeline: Path | str) -> dict[str, list[str]]:
    """The graph of a pipeline.yaml as Ploomber builds it (with its env.yaml)."""
    from ploomber.spec import DAGSpec

    with patch.dict(os.environ, PLOOMBER_ENV):  # loading the spec must not reach the network
        return dag_graph(DAGSpec(str(pipeline)).to_dag())


def generations(graph: Graph) -> dict[str, int]:
    """Each task's column: 0 without upstream, else one more than its latest upstream."""
    unknown = sorted({u for ups in graph.values() for u in ups} - set(graph))
    if unknown:
        raise ValueError(f"upstream tasks not in the graph: {unknown}")
    column: dict[str, int] = {}

    def place(task: str, path: tuple[str, ...]) -> int:
        if task in path:
            raise ValueError(f"the graph has a cycle: {' -> '.join((*path, task))}")
        if task not in column:
            ups = graph[task]
            column[task] = 1 + max((place(u, (*path, task)) for u in ups), default=-1)
        return column[task]

    for task in graph:
        place(task, ())
    return column


MAX_COLUMN = 12  # a taller column (a grid of many symbols) shows its ends and a count


def _shown(tasks: list[str]) -> tuple[list[str], dict[str, str]]:
    """A column's boxes, and the hidden tasks -> the box that stands for them."""
    if len(tasks) <= MAX_COLUMN:
        return tasks, {}
    head, hidden, tail = tasks[:5], tasks[5:-5], tasks[-5:]
    stand_in = f"... {len(hidden)} more"
    return [*head, stand_in, *tail], dict.fromkeys(hidden, stand_in)


def draw_dag(graph: Graph, target: Path | str) -> Path:
    """Write the graph as a PNG at `target` (atomically: a failed draw keeps the old one).

    Edges that skip columns are drawn as arcs above the row, so they do not run behind
    the tasks in between."""
    if not graph:
        raise ValueError("the pipeline has no tasks to draw")
    column = generations(graph)
    by_column: dict[int, list[str]] = {}
    for task in graph:
        by_column.setdefault(column[task], []).append(task)
    box_of = {task: task for task in graph}
    position: dict[str, tuple[float, float]] = {}
    for col, tasks in by_column.items():
        shown, hidden = _shown(tasks)
        box_of.update(hidden)
        for row, box in enumerate(shown):
            position[box] = (float(col), (len(shown) - 1) / 2 - row)
    height = max(len(_shown(tasks)[0]) for tasks in by_column.values())
    fig, ax = plt.subplots(figsize=(2.3 * len(by_column) + 1, 0.8 * height + 1.6))
    edges = {(box_of[u], box_of[t]) for t, ups in graph.items() for u in ups}
    for upstream, task in sorted(edges):
        span = position[task][0] - position[upstream][0]
        bend = 0.0 if span <= 1 else -(0.15 + 0.05 * span)
        ax.annotate(
            "", xy=position[task], xytext=position[upstream],
            arrowprops={"arrowstyle": "->", "color": "#57606a", "shrinkA": 38, "shrinkB": 38,
                        "connectionstyle": f"arc3,rad={bend}"},
        )  # fmt: skip
    for box, (x, y) in position.items():
        ax.text(
            x, y, box, ha="center", va="center", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "#ddf4ff", "edgecolor": "#0969da"},
        )  # fmt: skip
    ax.set_xlim(-0.7, len(by_column) - 0.3)
    longest = max((position[t][0] - position[u][0] for u, t in edges), default=1.0)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.6 + 0.3 * max(0.0, longest - 1))  # the arcs
    ax.axis("off")
    ax.set_title(f"{PIPELINE_FILE}: {len(graph)} tasks, {sum(map(len, graph.values()))} edges")
    fig.tight_layout()
    try:
        return atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
