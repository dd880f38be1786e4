"""The teaching layer's optional packages (the ``notebooks`` extra): a missing one is a one-line error that
names the extra to install."""

from __future__ import annotations

import importlib
import types

EXTRA = "pip install 'ood-explain[notebooks]'"


def need(module: str) -> types.ModuleType:
    """Import `module` (e.g. ``plotly.graph_objects``); when it is missing, a ModuleNotFoundError that says
    which extra brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.split(".")[0]
        raise ModuleNotFoundError(
            f"{top} is not installed; the figures, widgets and notebooks need the notebooks extra: {EXTRA}", name=top
        ) from error
