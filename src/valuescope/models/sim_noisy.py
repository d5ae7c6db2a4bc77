"""`sim/noisy`: a Thurstonian agent whose answers look like a small real model's.

A real model's P(A) is not the Thurstonian probability of its utilities. Measured on the
embedded Qwen2.5-Coder-1.5B (benchmarks/real_model_efficiency.py, docs/benchmarks.md), it
carries three distortions, which this agent plants on the logit of P(first option):

    z = scale * logit(P_thurstone(a > b)) + first_bias + e,   e ~ N(0, prompt_noise^2)

`scale` is the softness (below 1: answers closer to 1/2 than the utilities say; above 1:
more decisive), `first_bias` the position bias (positive favours the option shown first)
and `e` a noise fixed per prompt: both orders of a pair get their own draw, and repeated
samples of one prompt share it, so only new prompts average it out. Logprob mode returns
P(A) = expit(z); sample mode answers A with probability expit(z / T) at temperature T
(T = 0: the likelier label), which is how temperature acts on two competing tokens.
The defaults are the values measured on the embedded default model. `draw_seed` reseeds
the sampled answers (and refusals) alone: two runs of one agent that differ only in it
are independent reruns of the same model.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy.special import expit, logit, ndtr

from valuescope.common.seeds import stable_seed
from valuescope.errors import ValuescopeError
from valuescope.models.base import Answer, Query
from valuescope.models.params import MaybeWhole, Number
from valuescope.models.sim import REFUSAL_TEXT, ThurstoneAgent, ThurstoneParams

# Measured on embedded/qwen2.5-coder-1.5b, 20 outcomes of `demo`, both orders of all 190
# pairs in logprob mode (docs/benchmarks.md#query-efficiency-on-a-real-model): its P(first)
# lies between 0.20 and 0.60, leaning to the second option, with a small signal.
MEASURED_SCALE = 0.086
MEASURED_FIRST_BIAS = -0.25
MEASURED_PROMPT_NOISE = 0.155
P_CLIP = 1e-6  # keeps logit(P) finite where the Thurstonian probability is 0 or 1


_DISTORTIONS = ("first_bias", "prompt_noise", "scale")


class NoisyParams(ThurstoneParams):
    """`sim/noisy?...`: the Thurstone agent's parameters and the three distortions."""

    scale: Number = Field(MEASURED_SCALE, gt=0, le=100, description="softness of P(A)")
    first_bias: Number = Field(
        MEASURED_FIRST_BIAS, ge=-20, le=20, description="logit shift towards option A"
    )
    prompt_noise: Number = Field(
        MEASURED_PROMPT_NOISE, ge=0, le=100, description="logit noise sd, fixed per prompt"
    )
    draw_seed: MaybeWhole = Field(
        None, ge=0, le=2**63, description="seed of the sampled answers only (default: seed)"
    )


class NoisyAgent(ThurstoneAgent):
    """Thurstonian utilities through a soft, position-biased, noisy logit."""

    Params = NoisyParams

    def __init__(self, kind: str, params: dict[str, str], seed: int = 0) -> None:
        super().__init__(kind, params, seed)
        self.scale = self.settings.scale
        self.first_bias = self.settings.first_bias
        self.prompt_noise = self.settings.prompt_noise
        draw = self.settings.draw_seed
        self.draw_seed = self.seed if draw is None else draw
        # the name carries the distortions even where they are the defaults, so that a
        # cache filled under other defaults is never read back as this agent's answers
        shown = {k: v for k, v in params.items() if k not in ("seed", *_DISTORTIONS)}
        shown.update({k: f"{getattr(self, k):g}" for k in _DISTORTIONS})
        query = "&".join(f"{k}={shown[k]}" for k in sorted(shown))
        self.name = f"sim/{kind}?{query}#seed={self.seed}"

    def answer_logit(self, q: Query) -> float:
        """z, the logit of P(first option) this prompt gets (before temperature)."""
        p = self._prompt_noise(self.p_first(q.option_a, q.option_b, q.template), q)
        z = self.scale * float(logit(min(max(p, P_CLIP), 1.0 - P_CLIP))) + self.first_bias
        if self.prompt_noise:
            rng = np.random.default_rng(stable_seed("prompt_noise", self.seed, q.messages))
            z += float(rng.normal(scale=self.prompt_noise))
        return z

    def _answer_one(self, q: Query) -> Answer:
        rng = np.random.default_rng(
            stable_seed(self.draw_seed, q.messages, q.option_a, q.option_b, q.mode, q.sample_index)
        )
        refused = rng.random() < self.refusal_rate
        z = self.answer_logit(q)
        if q.mode == "logprob":
            if refused:
                return Answer(p_a=0.5, mass=0.0)
            p_a = self.position_bias + (1 - self.position_bias) * float(expit(z))
            return Answer(p_a=p_a, mass=1.0)
        if refused:
            return Answer(text=REFUSAL_TEXT)
        if q.temperature > 0:
            p_sample = float(expit(z / q.temperature))
        else:
            p_sample = 1.0 if z > 0 else 0.0 if z < 0 else 0.5
        p_sample = self.position_bias + (1 - self.position_bias) * p_sample
        return Answer(text=q.labels[0] if rng.random() < p_sample else q.labels[1])


def estimate_parameters(p_ab: np.ndarray, p_ba: np.ndarray, draws: int = 200_000) -> dict:
    """sim/noisy's parameters from logprob answers to both orders of many pairs.

    `p_ab[i]` is P(first option) with pair i's outcome a shown first, `p_ba[i]` with b
    first. With z = logit(P), z_ab = s d + b + e_ab and z_ba = -s d + b + e_ba, so
    (z_ab + z_ba) / 2 has mean b (`first_bias`) and sd prompt_noise / sqrt(2); the
    softness s (`scale`) is the one at which this agent's median |(z_ab - z_ba) / 2| over
    its own utility distribution (mu ~ N(0, 1), sigma ~ U(0.2, 1)) matches the answers'.
    Probabilities are clipped to [1e-4, 1 - 1e-4] first (a real model's logit can be huge).
    """
    p_ab, p_ba = np.asarray(p_ab, dtype=float), np.asarray(p_ba, dtype=float)
    if p_ab.shape != p_ba.shape or p_ab.ndim != 1 or len(p_ab) < 3:
        raise ValuescopeError("estimate_parameters needs two equal-length lists of 3+ answers")
    z_ab, z_ba = (logit(np.clip(p, 1e-4, 1 - 1e-4)) for p in (p_ab, p_ba))
    both, signal = (z_ab + z_ba) / 2, np.abs(z_ab - z_ba) / 2
    noise = float(np.sqrt(2) * both.std(ddof=1))
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=(2, draws)), rng.uniform(0.2, 1.0, size=(2, draws))
    true = logit(np.clip(ndtr((mu[0] - mu[1]) / np.hypot(*sigma)), P_CLIP, 1 - P_CLIP))
    e = rng.normal(scale=noise / np.sqrt(2), size=draws)
    target, lo, hi = float(np.median(signal)), 0.0, 100.0
    for _ in range(50):  # the median grows with the scale: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.median(np.abs(mid * true + e)) < target else (lo, mid)
    return {
        "first_bias": float(both.mean()),
        "first_bias_se": float(both.std(ddof=1) / np.sqrt(len(both))),
        "prompt_noise": noise,
        "scale": (lo + hi) / 2,
    }
