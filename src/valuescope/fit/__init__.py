"""Pairwise preference models: fit utilities from (pairs, p) arrays."""

from valuescope.fit._validation import check_pairs, count_components
from valuescope.fit.bootstrap import BootstrapResult, bootstrap_thurstonian
from valuescope.fit.bradley_terry import BradleyTerryResult, fit_bradley_terry
from valuescope.fit.metrics import (
    accuracy,
    coin_completeness,
    completeness,
    cycle_probability,
    kl_divergence,
    log_loss,
    pair_metrics,
)
from valuescope.fit.thurstonian import ConvergenceWarning, ThurstonianResult, fit_thurstonian

__all__ = [
    "BootstrapResult",
    "BradleyTerryResult",
    "ConvergenceWarning",
    "ThurstonianResult",
    "accuracy",
    "bootstrap_thurstonian",
    "check_pairs",
    "coin_completeness",
    "completeness",
    "count_components",
    "cycle_probability",
    "fit_bradley_terry",
    "fit_thurstonian",
    "kl_divergence",
    "log_loss",
    "pair_metrics",
]
