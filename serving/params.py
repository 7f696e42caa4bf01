"""The prediction routes' parameters, validated by hand-held pydantic adapters.

FastAPI's per-request dependency solving cost ~80 us of a ~200 us cached prediction
(measured in-process), more than the model and the log append together. The hot routes
therefore take the raw request and validate each parameter with a pydantic adapter built
once: the same rules and the same error texts as `Query(...)`/`Header(...)` would give,
raised as `RequestValidationError` (so the app's 422 handler answers), and the same
parameters in the OpenAPI schema (`openapi_parameters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from levibot.online.service import MAX_N_SAMPLES

SYMBOL_PATTERN = r"^[A-Za-z0-9]+$"


@dataclass(frozen=True)
class Param:
    """One query or header parameter: where it comes from, its rules, its docs."""

    name: str
    where: str  # "query" or "header"
    adapter: TypeAdapter
    description: str
    default: Any = ...

    def read(self, request: Request) -> Any:
        source = request.query_params if self.where == "query" else request.headers
        raw = source.get(self.name)
        if raw is None:
            if self.default is not ...:
                return self.default
            raise RequestValidationError([{
                "type": "missing", "loc": (self.where, self.name), "msg": "Field required",
                "input": None,
            }])  # fmt: skip
        try:
            return self.adapter.validate_python(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**error, "loc": (self.where, self.name, *error["loc"])}
                    for error in exc.errors(include_url=False)
                ]
            ) from None

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name, "in": self.where, "required": self.default is ...,
            "description": self.description, "schema": self.adapter.json_schema(),
        }  # fmt: skip


SYMBOL = Param(
    "symbol", "query",
    TypeAdapter(Annotated[str, Field(min_length=2, max_length=24, pattern=SYMBOL_PATTERN)]),
    "a symbol served by the registry, e.g. BTCUSDT",
)  # fmt: skip
N_SAMPLES = Param(
    "n_samples", "query",
    TypeAdapter(Annotated[int, Field(ge=1, le=MAX_N_SAMPLES)]),
    f"MC-dropout samples, 1..{MAX_N_SAMPLES} (a prefix of one draw per bar)", 20,
)  # fmt: skip
CLIENT_ID = Param(
    "X-Client-Id", "header", TypeAdapter(Annotated[str, Field(max_length=128)]),
    "sticky canary assignment key (optional)", None,
)  # fmt: skip


def openapi_parameters(*params: Param) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `params` by hand."""
    return {"parameters": [p.openapi() for p in params]}
