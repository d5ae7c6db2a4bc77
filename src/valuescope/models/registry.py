"""One string picks a backend: `provider/model?key=value&...`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import parse_qsl

from valuescope.errors import UnknownModelError
from valuescope.models.base import Backend

BackendFactory = Callable[..., Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register(provider: str) -> Callable[[BackendFactory], BackendFactory]:
    """Register a factory `f(model_name, params, **options) -> Backend` for a provider."""

    def wrap(factory: BackendFactory) -> BackendFactory:
        _REGISTRY[provider] = factory
        return factory

    return wrap


def providers() -> list[str]:
    """Registered provider prefixes."""
    _load_builtin()
    return sorted(_REGISTRY)


def parse_model_string(model: str) -> tuple[str, str, dict[str, str]]:
    """Split `provider/name?k=v` into (provider, name, params)."""
    if not isinstance(model, str) or "/" not in model:
        raise UnknownModelError(
            f"model {model!r} is not of the form <provider>/<model>, "
            "for example sim/thurstone or openai/gpt-4o"
        )
    provider, rest = model.split("/", 1)
    name, _, query = rest.partition("?")
    if not provider or not name:
        raise UnknownModelError(f"model {model!r} is missing a provider or a model name")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise UnknownModelError(f"model {model!r} has malformed parameters after '?'") from None
    return provider, name, params


def get_backend(model: str, **options) -> Backend:
    """Build the backend a model string names; options (seed, ...) go to its factory."""
    provider, name, params = parse_model_string(model)
    _load_builtin()
    factory = _REGISTRY.get(provider)
    if factory is None:
        known = ", ".join(f"{p}/..." for p in sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model provider {provider!r} in {model!r}; known: {known}")
    return factory(name, params, **options)


# Modules that register providers when imported; each imports its heavy SDK lazily,
# inside the factory, so the package loads without any SDK installed.
BUILTIN_MODULES = (
    "valuescope.models.sim",
    "valuescope.models.sim_maximization",
    "valuescope.models.openai_api",
    "valuescope.models.anthropic_api",
    "valuescope.models.llamacpp",
    "valuescope.models.embedded",
    "valuescope.models.hf",
    "valuescope.models.vllm",
    "valuescope.models.inspect_backend",  # every Inspect AI provider (inspect/...)
    # synthetic agents with planted properties for the analyses (experiments/)
    "valuescope.models.sim_lotteries",
    "valuescope.models.sim_quantities",
    "valuescope.models.sim_power",
    "valuescope.models.sim_political",  # non-partisan agent (political)
    "valuescope.control.sim_citizen",  # assembly members (control/)
)


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing import inside an existing module
                raise
