"""What every `levibot` command shares: settings from --env-file, the catalog, errors."""

from __future__ import annotations

import argparse

from levibot.settings import DEFAULT_ENV_FILE, Settings, load_settings
from levibot.state.paths import Paths

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the command ran and found something wrong (marathon check)
EXIT_ERROR = 2
EXIT_STATUS_HELP = (
    f"exit status: {EXIT_OK} done; {EXIT_ERROR} a usage error or an expected error, printed "
    "as one line 'error: ...' on stderr. Commands that decide have codes of their own, "
    "listed in their help: drift (0 ok .. 4), marathon check (1: an item failed), "
    "marathon evaluate (0 PROMOTE, 1 EXTEND, 3 ROLLBACK)."
)


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings a command runs with: the named --env-file (which must exist), else
    env.yaml in the working directory when there is one, else the defaults."""
    named = getattr(args, "env_file", None)
    return load_settings(named or DEFAULT_ENV_FILE, required=named is not None)


def paths_of(args: argparse.Namespace, settings: Settings | None = None) -> Paths:
    """The catalog of the command's settings, with --registry moving the registry side."""
    return Paths.of(settings or settings_of(args), registry=getattr(args, "registry", None))


def iso_time(text: str) -> str:
    """--now: any ISO timestamp pandas parses (naive means UTC)."""
    import pandas as pd

    try:
        pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO timestamp: {text!r}") from exc
    return text


def one_line(exc: BaseException) -> str:
    """An error message folded onto one line (the CLI prints `error: <one line>`)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
