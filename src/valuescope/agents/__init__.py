"""Planted synthetic agents (`sim/NAME`) with known ground truth, one module per analysis family.

Each agent reads the structure of an analysis's dataset (lotteries, Markov states, power
scores, quantities, policies, assembly prompts), so this package sits above the analyses
and control and nothing below imports it. `valuescope.models.registry.SIM_AGENTS` names every
agent as a "module:Class" string, imported on first use.
"""
