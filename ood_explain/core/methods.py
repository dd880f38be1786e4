"""The method registry: one :class:`Method` record per training method, and nothing about a method elsewhere.

A record says how one step's batch of views is built, which loss it trains, which score judges it, what it
needs (an external OE set, a classifier) and its own hyper-parameters. Training, experiments, benchmarks and
notebooks ask the registry; adding a method means writing one record and calling :func:`register`.

Plugins: a method defined in another package is found by name in every process (the CLI, ``--jobs``
subprocesses, a fresh ``Run.load``) when its module is named by the ``ood_explain.methods`` entry-point group
of an installed distribution, by ``$OOD_EXPLAIN_PLUGINS`` (comma-separated modules) or by ``--plugin MODULE``;
importing the module registers the method. A run folder records the module (``plugin`` in config.json).

Shapes: B ID images per step; a batch of views is R rows of floats in [0, 1], ID rows first (n_id of them).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata

import torch

from ood_explain.core import augment, losses
from ood_explain.core.augment import AugmentConfig
from ood_explain.core.scores import Features


@dataclass(frozen=True)
class Forward:
    """One forward pass of a batch of views: backbone h (R, F), raw projections z (R, d), the number of ID
    rows at the top, and the classifier logits (R,) when the model has a classifier (else None)."""

    h: torch.Tensor
    z: torch.Tensor
    n_id: int
    logit: torch.Tensor | None = None

    @property
    def z_id(self) -> torch.Tensor:
        return self.z[: self.n_id]

    @property
    def z_oe(self) -> torch.Tensor:
        return self.z[self.n_id :]


ViewBuilder = Callable[
    [torch.Tensor, "torch.Tensor | None", AugmentConfig, torch.Generator], "tuple[torch.Tensor, int]"
]
Loss = Callable[..., torch.Tensor]  # (forward, alpha, temperature, **the method's params) -> scalar
Score = Callable[[Features], torch.Tensor]  # features of N images -> (N,), higher = more ID


@dataclass(frozen=True)
class Method:
    """Everything that makes a training method what it is.

    make_views(id_images uint8 (B, C, H, W), oe_images uint8 (B, C, H, W) or None, augment config,
    generator) -> (x (R, C, H, W) floats in [0, 1], n_id). loss(forward, alpha, temperature) -> scalar.
    main_score: the column of the score table the method is judged by. own_scores: scores that only this
    method defines (name -> function of the test features). external_oe: needs an OE set (``--oe``).
    classifier: the model carries a binary classifier on h. oe_norm_term: the loss uses alpha (and so the
    warm-up). rows_per_image: rows one ID image becomes among the contrastive instances; a preset's batch
    size counts rows, so a method with 2 keeps the same rows per step with half the images.
    unused_modules: sub-modules the loss never touches (DistributedDataParallel must ignore them).
    params: the method's own hyper-parameters and their defaults (numbers, booleans or strings); they reach
    its loss as keyword arguments, a run's ``method_params``, its config.json and a CLI option ``--NAME``.
    source: the module that registered it (set by :func:`register`; what another process imports).
    """

    name: str
    summary: str
    make_views: ViewBuilder
    loss: Loss
    main_score: str = "norm_of_mean"
    own_scores: dict[str, Score] = field(default_factory=dict)
    external_oe: bool = False
    classifier: bool = False
    oe_norm_term: bool = False
    rows_per_image: int = 1
    unused_modules: tuple[str, ...] = ()
    params: dict[str, float | int | bool | str] = field(default_factory=dict)
    source: str = ""

    def images_per_batch(self, batch_size: int) -> int:
        """ID images per step for a preset batch size (which counts contrastive instances)."""
        return batch_size // self.rows_per_image

    def judged_by(self, available: set[str] | dict) -> str:
        """The main score, or the single-view norm when the run scored no random views."""
        return self.main_score if self.main_score in available else "norm"


REGISTRY: dict[str, Method] = {}
BUILT_IN = __name__  # the source of the records at the end of this module
ENTRY_POINTS = "ood_explain.methods"  # the entry-point group of plugin distributions
PLUGINS_VARIABLE = "OOD_EXPLAIN_PLUGINS"
_loaded: set[str] = set()


def register(method: Method, source: str | None = None) -> Method:
    """Add `method` to the registry and return the record (with its `source`: the calling module unless
    given). Registering a name again replaces the record with a warning saying so (a notebook cell run
    twice); the built-in methods cannot be replaced."""
    source = source or method.source or sys._getframe(1).f_globals.get("__name__", "")
    method = replace(method, source=source)
    old = REGISTRY.get(method.name)
    if old is not None:
        if old.source == BUILT_IN:
            raise ValueError(
                f"{method.name!r} is a built-in method and cannot be replaced; register yours under another name"
            )
        warnings.warn(f"method {method.name!r} (from {old.source}) replaced by the one from {source}", stacklevel=2)
    REGISTRY[method.name] = method
    return method


def unregister(name: str) -> Method:
    """Remove the method `name` from the registry and return its record (built-in methods stay)."""
    record = get(name)
    if record.source == BUILT_IN:
        raise ValueError(f"{name!r} is a built-in method and cannot be removed")
    return REGISTRY.pop(name)


def plugin_modules() -> list[str]:
    """Modules named by ``$OOD_EXPLAIN_PLUGINS`` (comma-separated), in order."""
    return [m.strip() for m in os.environ.get(PLUGINS_VARIABLE, "").split(",") if m.strip()]


@functools.cache
def entry_point_modules() -> tuple[tuple[str, str], ...]:
    """(module, where it was named) of every entry point of group :data:`ENTRY_POINTS`, read once per process:
    scanning the installed distributions is the slow part, and :func:`names` asks on every call."""
    return tuple(
        (ep.value.split(":")[0], f"entry point {ep.name!r} of group {ENTRY_POINTS}")
        for ep in metadata.entry_points(group=ENTRY_POINTS)
    )


def load_plugins(modules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Import the plugin modules (the entry points of group :data:`ENTRY_POINTS`, then
    ``$OOD_EXPLAIN_PLUGINS``, then `modules`), each once; importing one registers its methods. Returns the
    modules imported now. A module that cannot be imported is a one-line error naming it and where it was named."""
    named = list(entry_point_modules())
    named += [(m, f"${PLUGINS_VARIABLE}") for m in plugin_modules()] + [(m, "the plugin list") for m in modules]
    imported = []
    for module, where in named:
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(f"plugin module {module!r} (named by {where}) cannot be imported: {error}") from None
        _loaded.add(module)
        imported.append(module)
    return imported


def use_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Load `modules` here and add them to ``$OOD_EXPLAIN_PLUGINS``, so subprocesses load them too."""
    load_plugins(modules)
    known = plugin_modules()
    os.environ[PLUGINS_VARIABLE] = ",".join(known + [m for m in modules if m not in known])


def names() -> tuple[str, ...]:
    """Registered method names (plugins loaded), in registration order."""
    load_plugins()
    return tuple(REGISTRY)


def record(method: str | Method) -> Method:
    """`method` itself when it is a record already, else :func:`get` of its name: functions that a run calls
    with its resolved record take a name too."""
    return method if isinstance(method, Method) else get(method)


def get(name: str, source: str | None = None) -> Method:
    """The record of `name`, loading the plugins (and `source`, the module a run folder names) when it is not
    registered yet; an unknown name is a ValueError listing the choices."""
    if name not in REGISTRY:
        load_plugins([source] if source and source != "__main__" else [])
    if name not in REGISTRY:
        hint = (
            f" (it was defined in a notebook or script, {source}: run the cell that registers it first, or "
            "move it into a module)"
            if source == "__main__"
            else f"; a plugin's method needs its module: --plugin MODULE or ${PLUGINS_VARIABLE}"
        )
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}{hint}")
    return REGISTRY[name]


def resolve_params(method: Method, given: dict | None) -> dict:
    """The method's hyper-parameters: its defaults updated by `given` (values converted to the default's
    type); a name the method does not declare is a ValueError listing the ones it has."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(method.params))
    if unknown:
        have = ", ".join(method.params) or "none"
        raise ValueError(
            f"method {method.name!r} has no hyper-parameter {', '.join(map(repr, unknown))} (its own: {have})"
        )
    return {
        name: _as_type(method.name, name, given.get(name, default), default) for name, default in method.params.items()
    }


def _as_type(method: str, name: str, value, default):
    kind = type(default)
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{method} {name}: expected true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{method} {name}: expected a {kind.__name__} (default {default!r}), got {value!r}") from None


# ------------------------------------------------------------------------------------ batches of views


def two_views(id_images, oe_images, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """[ID views 1; ID views 2]: 2B rows, all ID."""
    v1, v2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    return torch.cat([v1, v2]), 2 * len(id_images)


def two_views_and_oe(
    id_images, oe_images, config: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """[ID views 1; ID views 2; OE views 1; OE views 2]: 2B ID rows, then two views of the B OE images."""
    if oe_images is None:
        raise ValueError("this method needs an OE batch")
    ids, n_id = two_views(id_images, None, config, generator)
    oe, _ = two_views(oe_images, None, config, generator)
    return torch.cat([ids, oe]), n_id


def rotated_views(id_images, oe_images, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """self-OECL: ID instances are the 0 and 90 degree rotations of each view (4B rows laid out
    [v1, rot90 v1; v2, rot90 v2], so row i pairs with row i + 2B), OE rows are the 180 and 270 degree
    rotations of two fresh views of the same images (4B rows)."""
    v1, v2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    w1, w2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    rows = [v1, augment.rotate90(v1, 1), v2, augment.rotate90(v2, 1)]
    rows += [augment.rotate90(w, k) for w in (w1, w2) for k in (2, 3)]
    return torch.cat(rows), 4 * len(id_images)


# ------------------------------------------------------------------------------------------------ losses


def contrastive_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    """NT-Xent on the ID rows, gathered over processes (SimCLR)."""
    return losses.nt_xent(forward.z_id, temperature, gather=True)


def contrastive_and_oe_norm_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    """:func:`ood_explain.core.losses.oecl_loss` of the ID and OE rows, gathered over processes (OECL, self-OECL)."""
    return losses.oecl_loss(forward.z_id, forward.z_oe, temperature, alpha, gather=True)


def hypersphere_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    return losses.hsc_loss(forward.z_id, forward.z_oe)


def classifier_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    assert forward.logit is not None  # the BCE method builds its model with a classifier (classifier=True)
    return losses.bce_loss(forward.logit[: forward.n_id], forward.logit[forward.n_id :])


def _classifier_score(features: Features) -> torch.Tensor:
    assert features.logit is not None  # extract_features returns logits for models with a classifier
    return features.logit


# ------------------------------------------------------------------------------------------------ records

SIMCLR = register(
    Method("simclr", "SimCLR: NT-Xent on two views; the norm of z is a by-product", two_views, contrastive_loss)
)
OECL = register(
    Method(
        "oecl",
        "OECL: NT-Xent on ID views + alpha * mean ||z|| of external OE views, one forward pass",
        two_views_and_oe,
        contrastive_and_oe_norm_loss,
        external_oe=True,
        oe_norm_term=True,
    )
)
SELF_OECL = register(
    Method(
        "self-oecl",
        "self-OECL: 0/90 degree rotations are ID instances, 180/270 degree rotations are OE",
        rotated_views,
        contrastive_and_oe_norm_loss,
        oe_norm_term=True,
        rows_per_image=2,
    )
)
HSC = register(
    Method(
        "hsc",
        "Hypersphere classifier with OE: ID near the origin, OE far from it (Ruff et al. 2021)",
        two_views_and_oe,
        hypersphere_loss,
        main_score="hsc",
        own_scores={"hsc": lambda features: -losses.hsc_distance(features.z)},
        external_oe=True,
    )
)
BCE = register(
    Method(
        "bce",
        "Binary normal-vs-OE classifier on the backbone features",
        two_views_and_oe,
        classifier_loss,
        main_score="bce",
        own_scores={"bce": _classifier_score},
        external_oe=True,
        classifier=True,
        unused_modules=("head",),
    )
)
