"""The experiments layer: configs, runs and their folders, sweeps over seeds, the paper's tables.

``runs`` (RunConfig, a config -> data and model, scoring, the Run object and its run folder, the reuse rule),
``sweeps`` (methods x classes x seeds, tables over seeds), ``reproduce`` (named paper tables and studies),
``quickstart``. Imports the core only. The names of ``runs`` are importable from here too
(``from ood_explain.experiments import RunConfig``).
"""

from ood_explain.experiments.runs import (
    EVALUATION,
    PRESETS,
    Run,
    RunConfig,
    RunFolderInUse,
    class_name,
    evaluation_sets,
    folder_lock,
    id_and_ood,
    is_finished,
    load_data,
    make_model,
    model_settings,
    resolve,
    reusable,
    run_experiment,
    score_table,
)

__all__ = [
    "EVALUATION",
    "PRESETS",
    "Run",
    "RunConfig",
    "RunFolderInUse",
    "class_name",
    "evaluation_sets",
    "folder_lock",
    "id_and_ood",
    "is_finished",
    "load_data",
    "make_model",
    "model_settings",
    "resolve",
    "reusable",
    "run_experiment",
    "score_table",
]
