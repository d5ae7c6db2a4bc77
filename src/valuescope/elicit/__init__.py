"""Elicitation: prompts, parsing, the response cache, and aggregation to P(a > b)."""

from valuescope.elicit.cache import ResponseCache, query_key
from valuescope.elicit.elicit import (
    REFUSAL_POLICIES,
    ElicitSettings,
    PairAnswers,
    aggregate,
    ask,
    build_queries,
    elicit_pairs,
    make_query,
    merge_answers,
    pool_templates,
    preference_p,
)
from valuescope.elicit.parse import parse_choice
from valuescope.elicit.prompts import TEMPLATES, Template, get_template

__all__ = [
    "TEMPLATES",
    "ElicitSettings",
    "PairAnswers",
    "ResponseCache",
    "Template",
    "aggregate",
    "ask",
    "build_queries",
    "elicit_pairs",
    "make_query",
    "merge_answers",
    "pool_templates",
    "preference_p",
    "REFUSAL_POLICIES",
    "get_template",
    "parse_choice",
    "query_key",
]
