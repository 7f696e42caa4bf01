"""Model artifact files: content hashes and JSON sidecars, shared by every model kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from levibot.io import read_json, sha256_file, write_json_atomic


class ArtifactError(ValueError):
    """An artifact is missing or does not match its recorded hash."""


def check_sha256(path: Path | str, expected: str) -> None:
    """Raise ArtifactError unless `path` exists and hashes to `expected`."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"artifact missing: {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise ArtifactError(
            f"artifact {path} has sha256 {actual[:12]}..., expected {expected[:12]}..."
        )


def sidecar_path(artifact: Path | str) -> Path:
    return Path(str(artifact) + ".json")


def write_sidecar(artifact: Path | str, meta: dict[str, Any]) -> Path:
    """Metadata beside an artifact, including the artifact's sha256."""
    payload = {**meta, "artifact": Path(artifact).name, "sha256": sha256_file(artifact)}
    return write_json_atomic(sidecar_path(artifact), payload)


def read_sidecar(artifact: Path | str) -> dict[str, Any]:
    """The sidecar, after checking the artifact still matches the hash recorded in it."""
    meta = read_json(sidecar_path(artifact))
    check_sha256(artifact, meta["sha256"])
    return meta
