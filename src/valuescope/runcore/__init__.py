"""The run core: a run's plan and pipeline, the evaluation of its fit, its directory, and
prompt sensitivity.

- `pipeline`: outcomes -> pair design -> elicitation -> fit -> metrics -> run directory;
- `fit_evaluation`: held-out scores, coherence figures, intervals and baselines of a fit;
- `rundir`: the run directory (lock, run_config.json, resume checks, atomic writes);
- `sensitivity`: the same pairs under several templates, compared.

Nothing is imported here, so importing one module does not load the others.
"""
