"""The model registry: which release is prod, which is the candidate, and why.

This package alone reads and writes the registry file and the canary policy file
(`Paths.registry`, `Paths.canary_policy`): `schema` holds the models, `store` the
locked atomic file access and artifact checks, `operations` the audited changes,
`canary` the canary policy with the threshold model, `describe` the summary text.
Older events are rotated out of the registry file to its events archive
(`Paths.events_archive`); `registry_events` reads the whole history.
"""

from levibot.registry.canary import (
    CanaryPolicy,
    load_canary_policy,
    save_canary_policy,
    signal_confidence,
    update_canary_policy,
)
from levibot.registry.describe import describe
from levibot.registry.operations import (
    bootstrap_prod,
    promote,
    register_candidate,
    rollback,
    tighten_policy,
)
from levibot.registry.schema import (
    SCHEMA_VERSION,
    ArchivedEntry,
    ArtifactRef,
    CalibrationInfo,
    DataWindow,
    Event,
    Lineage,
    ModelEntry,
    ModelKind,
    ModelSpec,
    PolicyInfo,
    Registry,
    RegistryError,
    Role,
    Target,
)
from levibot.registry.store import (
    EVENTS_KEPT,
    artifact_ref,
    load_registry,
    registry_events,
    registry_transaction,
    save_registry,
    verify_artifacts,
)

__all__ = [
    "EVENTS_KEPT",
    "SCHEMA_VERSION",
    "ArchivedEntry",
    "ArtifactRef",
    "CalibrationInfo",
    "CanaryPolicy",
    "DataWindow",
    "Event",
    "Lineage",
    "ModelEntry",
    "ModelKind",
    "ModelSpec",
    "PolicyInfo",
    "Registry",
    "RegistryError",
    "Role",
    "Target",
    "artifact_ref",
    "bootstrap_prod",
    "describe",
    "load_canary_policy",
    "load_registry",
    "promote",
    "register_candidate",
    "registry_events",
    "registry_transaction",
    "rollback",
    "save_canary_policy",
    "save_registry",
    "signal_confidence",
    "tighten_policy",
    "update_canary_policy",
    "verify_artifacts",
]
