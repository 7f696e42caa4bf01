"""The catalog of state: every file the system reads or writes, named in one place.

`Paths.of(settings)` is the only place a state file's name is spelled out. Each file kind
has one typed reader/writer that takes these paths (listed beside each property), and
nothing else opens the file. Orchestrators follow "load through the catalog -> pure
function -> write through the catalog".

Layout (relative to the settings' folders):

    data/store/{bars,features}/<SYMBOL>_<tf>.parquet     levibot.data.store.FeatureStore
    data/staging/<SYMBOL>[_quarantine]-<i>.parquet|.json fetch-<SYMBOL> (pipeline.yaml grid)
    data/quarantine/<SYMBOL>_<tf>.csv                    levibot.ingest
    data/ingest_manifest.json                            levibot.ingest
    data/REPLAY, data/replay_clock.json                  levibot.online.clock
    data/replay/latest/                                  a replay Workspace (below)
    data/serving/logs/{predictions,trades}_<day>.jsonl   levibot.online.shadow_log
    data/serving/paper/<role>.json                       levibot.online.paper
    data/serving/kill_switch.json                        levibot.online.killswitch
    data/serving/audit.jsonl                             levibot.online.audit
    data/serving/marathon.json                           levibot.state.records
    data/serving/{server.log,server.pid,prometheus/,last_check.json,cron/}
    data/serving/last_good/{current.json,<digest>/}      levibot.online.last_good
    registry/model_registry.json                         levibot.registry
    registry/model_registry_events.jsonl                 levibot.registry (rotated events)
    registry/canary_policy.json (+ thresholds)           levibot.registry.canary
    registry/ensemble_weights.json                       levibot.state.weights
    registry/drift/<stamp>.json, latest.json             levibot.state.drift_log
    registry/artifacts/                                  levibot.training
    registry/runs/serve_env.yaml                         levibot.settings.save_settings
    registry/runs/marathon_evaluation.json               levibot.marathon.evaluate / state.records
    reports/index.html                                   levibot.run_page
    reports/pipeline.png                                 levibot.dag_picture
    reports/runs/<run-id>/{run.json,*.html,...}          levibot.run_history
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from levibot.symbols import check_symbol

if TYPE_CHECKING:
    from levibot.data.store import FeatureStore
    from levibot.settings import Settings

REGISTRY_FILE = "model_registry.json"


def events_archive_for(registry_file: Path | str) -> Path:
    """Registry events rotated out of `registry_file` (oldest first, JSON Lines), beside it."""
    registry_file = Path(registry_file)
    return registry_file.with_name(f"{registry_file.stem}_events.jsonl")


@dataclass(frozen=True)
class Paths:
    """Where one deployment (or one replay workspace) keeps its state."""

    data_dir: Path
    registry_dir: Path
    reports_dir: Path
    timeframe: str
    registry_name: str = REGISTRY_FILE

    @classmethod
    def of(cls, settings: Settings, *, registry: Path | str | None = None) -> Paths:
        """The settings' folders; `registry` (a registry JSON file) moves the registry side
        (canary policy, weights, drift, runs live beside that file)."""
        registry_dir, name = Path(settings.registry_dir), REGISTRY_FILE
        if registry is not None:
            registry_dir, name = Path(registry).parent, Path(registry).name
        return cls(
            Path(settings.data_dir), registry_dir, Path(settings.reports_dir),
            settings.timeframe, name,
        )  # fmt: skip

    # ---------------------------------------------------------------- market data

    @property
    def store_root(self) -> Path:
        return self.data_dir / "store"

    def store(self, timeframe: str | None = None) -> FeatureStore:
        """The feature store (shared by ingest, training, drift, tuning and serving)."""
        from levibot.data.store import FeatureStore

        return FeatureStore(self.store_root, timeframe or self.timeframe)

    def quarantine(self, symbol: str) -> Path:
        return self.data_dir / "quarantine" / f"{check_symbol(symbol)}_{self.timeframe}.csv"

    @property
    def manifest(self) -> Path:
        return self.data_dir / "ingest_manifest.json"

    @property
    def replay_marker(self) -> Path:
        """Present only in a replay workspace: the server may then use a replay clock."""
        return self.data_dir / "REPLAY"

    @property
    def replay_clock(self) -> Path:
        return self.data_dir / "replay_clock.json"

    @property
    def default_workspace(self) -> Path:
        return self.data_dir / "replay" / "latest"

    # -------------------------------------------------------------------- serving

    @property
    def simulation_dir(self) -> Path:
        """`levibot marathon simulate`: trained releases (reused) and per-run workspaces."""
        return self.data_dir / "simulate"

    @property
    def serving(self) -> Path:
        return self.data_dir / "serving"

    @property
    def logs(self) -> Path:
        return self.serving / "logs"

    def paper_book(self, role: str) -> Path:
        if role not in ("prod", "candidate"):
            raise ValueError(f"a paper book is 'prod' or 'candidate', got {role!r}")
        return self.serving / "paper" / f"{role}.json"

    @property
    def kill_switch(self) -> Path:
        return self.serving / "kill_switch.json"

    @property
    def audit(self) -> Path:
        return self.serving / "audit.jsonl"

    @property
    def marathon(self) -> Path:
        """The live (or replayed) marathon's start snapshot."""
        return self.serving / "marathon.json"

    @property
    def server_log(self) -> Path:
        return self.serving / "server.log"

    @property
    def server_pid(self) -> Path:
        return self.serving / "server.pid"

    @property
    def prometheus_dir(self) -> Path:
        return self.serving / "prometheus"

    @property
    def last_good(self) -> Path:
        """Copies of the registry files (and links to the artifacts) a server worker last
        loaded whole, one folder per content digest, shared by every worker."""
        return self.serving / "last_good"

    @property
    def last_good_pointer(self) -> Path:
        """Which `last_good` folder is the newest."""
        return self.last_good / "current.json"

    @property
    def last_check(self) -> Path:
        return self.serving / "last_check.json"

    @property
    def cron_logs(self) -> Path:
        return self.serving / "cron"

    # ------------------------------------------------------------------- registry

    @property
    def registry(self) -> Path:
        return self.registry_dir / self.registry_name

    @property
    def events_archive(self) -> Path:
        return events_archive_for(self.registry)

    @property
    def canary_policy(self) -> Path:
        return self.registry_dir / "canary_policy.json"

    @property
    def ensemble_weights(self) -> Path:
        return self.registry_dir / "ensemble_weights.json"

    @property
    def artifacts(self) -> Path:
        return self.registry_dir / "artifacts"

    @property
    def drift_dir(self) -> Path:
        return self.registry_dir / "drift"

    @property
    def drift_latest(self) -> Path:
        return self.drift_dir / "latest.json"

    @property
    def runs(self) -> Path:
        return self.registry_dir / "runs"

    @property
    def server_settings(self) -> Path:
        """The settings file a managed (`marathon start`) server is started with."""
        return self.runs / "serve_env.yaml"

    @property
    def evaluation(self) -> Path:
        return self.runs / "marathon_evaluation.json"

    # -------------------------------------------------------------------- reports

    @property
    def report_index(self) -> Path:
        return self.reports_dir / "index.html"

    @property
    def pipeline_picture(self) -> Path:
        """The task graph as a PNG (`levibot dag`, and each recorded build)."""
        return self.reports_dir / "pipeline.png"

    @property
    def report_runs(self) -> Path:
        """One folder per pipeline build that reached the evaluation (run history)."""
        return self.reports_dir / "runs"

    def run_record(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ValueError(f"invalid run id {run_id!r}")
        return self.report_runs / run_id / "run.json"


@dataclass(frozen=True)
class Workspace:
    """A replay workspace: a whole deployment's state under one folder, plus its records."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def settings_file(self) -> Path:
        """The full settings the replay ran with (also the replay server's env file)."""
        return self.root / "env.yaml"

    @property
    def summary(self) -> Path:
        return self.root / "replay_summary.json"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"

    @property
    def drift_reference(self) -> Path:
        return self.root / "drift_reference.npz"
