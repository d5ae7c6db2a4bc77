"""One string picks a backend: `provider/model?key=value&...`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping

from valuescope.errors import UnknownModelError
from valuescope.models.base import Backend
from valuescope.models.params import split_model_string

BackendFactory = Callable[..., Backend]


class LazyTable(MutableMapping[str, object]):
    """Names to objects; an entry given as "module:attribute" is imported on first lookup.

    Listing the names imports nothing. An entry set to an object (a factory registered at
    run time, a test's agent) is used as it is.
    """

    def __init__(self, entries: dict[str, object]) -> None:
        self._entries = dict(entries)
        self._loaded: dict[str, object] = {}

    def __getitem__(self, name: str) -> object:
        if name not in self._loaded:
            entry = self._entries[name]
            if isinstance(entry, str):
                module, _, attribute = entry.partition(":")
                entry = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = entry
        return self._loaded[name]

    def __setitem__(self, name: str, entry: object) -> None:
        self._entries[name] = entry
        self._loaded.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


# The one provider table: provider -> its factory `f(model_name, params, **options)`. Each
# module imports its heavy SDK inside the factory, so the table's modules load without it.
PROVIDERS = LazyTable(
    {
        "sim": "valuescope.models.sim:make_sim",
        "openai": "valuescope.models.openai_api:make_openai",
        "anthropic": "valuescope.models.anthropic_api:make_anthropic",
        "llamacpp": "valuescope.models.llamacpp:make_llamacpp",
        "embedded": "valuescope.models.embedded:make_embedded",
        "hf": "valuescope.models.hf:make_hf",
        "vllm": "valuescope.models.vllm:make_vllm",
        "inspect": "valuescope.models.inspect_backend:make_inspect",  # every Inspect provider
    }
)

# `sim/NAME` -> the agent class. The generic agents live in models/sim.py; the planted
# agents that serve one analysis live in valuescope.agents (above the analyses they read).
SIM_AGENTS = LazyTable(
    {
        "random": "valuescope.models.sim:RandomAgent",
        "thurstone": "valuescope.models.sim:ThurstoneAgent",
        "noisy": "valuescope.models.sim_noisy:NoisyAgent",  # real-model-like answers
        # expected utility, instrumental values, power ratings, corrigibility, satisficing
        "eu": "valuescope.agents.structured:ExpectedUtilityAgent",
        "best-outcome": "valuescope.agents.structured:BestOutcomeAgent",
        "instrumental": "valuescope.agents.structured:InstrumentalAgent",
        "powerseeker": "valuescope.agents.structured:PowerSeekingAgent",
        "incorrigible": "valuescope.agents.structured:IncorrigibleAgent",
        "opposes-all": "valuescope.agents.structured:ConstantOppositionAgent",
        "satisficer": "valuescope.agents.structured:SatisficingAgent",
        # utility maximization
        "maximiser": "valuescope.agents.maximization:Maximiser",
        "utility-ignorer": "valuescope.agents.maximization:UtilityIgnorer",
        "off-list": "valuescope.agents.maximization:OffList",
        # exchange rates, time discounting, political
        "exchange": "valuescope.agents.quantities:ExchangeAgent",
        "hyperbolic": "valuescope.agents.quantities:HyperbolicAgent",
        "exponential": "valuescope.agents.quantities:ExponentialAgent",
        "partisan": "valuescope.agents.quantities:PartisanAgent",
        "nonpartisan": "valuescope.agents.political:NonPartisanAgent",
        # power-seeking (the kind picks the planted weight and judgement)
        "power-seeker": "valuescope.agents.power:PowerAgent",
        "power-indifferent": "valuescope.agents.power:PowerAgent",
        "power-averse": "valuescope.agents.power:PowerAgent",
        "power-blind": "valuescope.agents.power:PowerAgent",
        # citizens' assembly members (control)
        "citizen": "valuescope.agents.citizen:CitizenAgent",
        "citizen-herd": "valuescope.agents.citizen:HerdingCitizen",
        "citizen-fixed": "valuescope.agents.citizen:FixedCitizen",
    }
)


def register(provider: str) -> Callable[[BackendFactory], BackendFactory]:
    """Register a factory `f(model_name, params, **options) -> Backend` for a provider."""

    def wrap(factory: BackendFactory) -> BackendFactory:
        PROVIDERS[provider] = factory
        return factory

    return wrap


def providers() -> list[str]:
    """Registered provider prefixes (imports none of their modules)."""
    return sorted(PROVIDERS)


def parse_model_string(model: str) -> tuple[str, str, dict[str, str]]:
    """Split `provider/name?k=v` into (provider, name, params): models.params is the parser."""
    return split_model_string(model)


def get_backend(model: str, **options) -> Backend:
    """Build the backend a model string names; options (seed, ...) go to its factory."""
    provider, name, params = parse_model_string(model)
    if provider not in PROVIDERS:
        known = ", ".join(f"{p}/..." for p in sorted(PROVIDERS))
        raise UnknownModelError(f"unknown model provider {provider!r} in {model!r}; known: {known}")
    factory = PROVIDERS[provider]
    return factory(name, params, **options)
