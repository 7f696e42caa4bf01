"""The state catalog: `Paths` names every file; one small reader/writer per file kind."""

from levibot.state.paths import Paths, Workspace

__all__ = ["Paths", "Workspace"]
