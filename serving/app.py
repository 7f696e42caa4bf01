"""App factory: `uvicorn serving.app:create_app --factory`.

The lifespan builds one PredictionService per worker process from the settings
(env file named by LEVIBOT_ENV_FILE, default env.yaml, plus LEVIBOT_* variables).
Errors become JSON 4xx/503 answers with a message, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from levibot.io import CorruptFileError
from levibot.online.clock import clock_for
from levibot.online.service import PredictionService, ServiceUnavailable
from levibot.registry import RegistryError
from levibot.settings import DEFAULT_ENV_FILE, Settings, SettingsError, load_settings
from levibot.state.paths import Paths
from levibot.symbols import UnknownSymbolError
from serving.errors import redact_paths, roots_of, validation_message
from serving.routes import admin, health, predict
from serving.routes.predict import PredictionLimits
from serving.timing import TimingMiddleware

log = logging.getLogger("levibot.serving")


BAR_CLOCK_EVERY_SEC = 1.0  # a look per second: cheap (a stat per symbol), bars are minutes


async def _bar_clock(service: PredictionService, every: float) -> None:
    """Paper books act on each bar close, whether or not a client asks about the symbol.

    A symbol that cannot act is logged when its reason changes, not every second."""
    said: dict[str, str] = {}
    while True:
        try:
            outcome = await anyio.to_thread.run_sync(service.act_on_closed_bars)
        except Exception as exc:  # a bad moment (state file, lock) must not stop the clock
            outcome = {"*": f"{type(exc).__name__}: {exc}"}
        for symbol, what in outcome.items():
            if what != "acted" and said.get(symbol) != what:
                log.warning("bar clock: %s cannot act: %s", symbol, what)
            said[symbol] = what
        await asyncio.sleep(every)


def create_app(
    settings: Settings | None = None,
    service: PredictionService | None = None,
    *,
    bar_clock_every: float | None = None,
) -> FastAPI:
    """Build the app; tests pass settings (or a ready service), uvicorn passes nothing.

    `bar_clock_every`: seconds between the bar clock's looks; by default it runs in live
    mode only (a replay drives every bar close itself) and never for a passed service.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        every = bar_clock_every
        if service is not None:
            app.state.service = service
        else:
            env_file = os.environ.get("LEVIBOT_ENV_FILE")
            resolved = settings or load_settings(
                env_file or DEFAULT_ENV_FILE, required=env_file is not None
            )
            clock, mode = clock_for(Paths.of(resolved))
            reload_every = 0.0 if mode == "replay" else 0.5  # replay: files change per bar
            app.state.service = PredictionService(resolved, clock=clock, reload_every=reload_every)
            if mode != "live":
                log.warning("levibot serving in %s mode", mode)
            elif every is None:
                every = BAR_CLOCK_EVERY_SEC
            # Everything loaded so far (models, pandas, torch) lives as long as the worker
            # process: frozen out of the collector's reach, full collections no longer walk
            # it. Those walks were the periodic event-loop pauses behind a p99 of ~100 ms
            # against a p50 of ~5 ms (measured: freezing alone took p99 to ~6-10 ms).
            gc.collect()
            gc.freeze()
        clock_task = None
        if every:
            clock_task = asyncio.get_running_loop().create_task(
                _bar_clock(app.state.service, every)
            )
        yield
        if clock_task is not None:
            clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock_task

    app = FastAPI(
        title="LeviBot",
        description="ML trading signals with a canary, shadow logs and paper trading.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.limits = PredictionLimits()
    app.include_router(predict.router)  # first: the hot routes are matched first
    app.include_router(health.router)
    app.include_router(admin.router)

    def error(request: Request, status: int, message: str) -> JSONResponse:
        roots = roots_of(getattr(request.app.state, "service", None))
        return JSONResponse(status_code=status, content={"detail": redact_paths(message, roots)})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(request, 422, validation_message(exc.errors()))

    @app.exception_handler(UnknownSymbolError)
    async def unknown_symbol(request: Request, exc: UnknownSymbolError) -> JSONResponse:
        return error(request, 404, str(exc.args[0]))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        status = 409 if isinstance(exc, RegistryError | SettingsError | CorruptFileError) else 422
        return error(request, status, str(exc))

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return error(request, 503, str(exc))

    @app.exception_handler(OSError)
    async def state_file(request: Request, exc: OSError) -> JSONResponse:
        log.error("state file problem: %s", exc)  # the path goes to the log only
        return error(
            request, 503, f"server state unavailable ({type(exc).__name__}); see the server log"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the traceback goes to the log, not the client
        return error(request, 500, f"internal error ({type(exc).__name__}); see the server log")

    app.add_middleware(TimingMiddleware)
    return app
