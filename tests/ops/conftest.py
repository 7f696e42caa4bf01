"""What the ops tests share: Debian's prometheus package's binaries, required in CI."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "LEVIBOT_REQUIRE_PROMETHEUS"  # .ci/run sets it: a missing binary fails there


def prometheus_tool(name: str) -> str:
    """The `prometheus` or `promtool` executable; skip without it, unless CI requires it."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(
            f"{name} not on PATH, but {REQUIRE_ENV}=1 requires its tests to run: install it "
            "(Debian: apt-get install prometheus; make check-ops does) or unset the variable",
            pytrace=False,
        )
    pytest.skip(f"{name} not on PATH (make check-ops installs it)")
