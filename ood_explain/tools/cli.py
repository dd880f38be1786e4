"""The ``ood-explain`` command line: run, sweep, report, tensorboard, quickstart, reproduce, claims, bench."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

from ood_explain.core import data, distributed, methods, models
from ood_explain.core.machine import usable_cores
from ood_explain.core.training import PRECISIONS
from ood_explain.experiments import runs as experiments
from ood_explain.experiments import sweeps
from ood_explain.experiments.sweeps import RunsFailed
from ood_explain.tools import bench, classroom_cli
from ood_explain.tools import tensorboard as tensorboard_export

# ------------------------------------------------------------------------- argument types (checked while parsing)
# argparse prefixes each message with "argument --FLAG:" and exits with code 2.


def int_in_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


positive_int = int_in_range(1)
non_negative_int = int_in_range(0)
at_least_two = int_in_range(2)  # --batch-size: a contrastive batch needs a second image
seed_int = int_in_range(0, 2**32 - 1)  # NumPy's seed range


def finite_float(text: str) -> float:
    """An argparse type: a finite number (no NaN or infinity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_finite_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def non_negative_finite_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def int_list(what: str, example: str, minimum: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated whole numbers of at least `minimum` (`what` and `example` for errors)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(k) for k in text.split(",")]
        except ValueError:
            message = f"expected comma-separated {what} such as {example}, got {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if min(values) < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}, got {text!r}")
        return values

    return parse


class_indices = int_list("class indices", "0,1,3", 0)
step_budgets = int_list("step counts", "150,1200", 1)


def seed_list(text: str) -> list[int]:
    """An argparse type: a seed count ("3" -> 0, 1, 2; at least 1) or a comma-separated list of two or more
    distinct seeds ("0,4,7"); "0", "3," and "1,1" are refused (:func:`ood_explain.experiments.sweeps.seed_list`)."""
    try:
        return sweeps.seed_list(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def architectures(text: str) -> str:
    """An argparse type: comma-separated architecture names, each one of :data:`ood_explain.core.models.ARCHITECTURES`
    (checked before any benchmarking starts)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated architectures such as small-cnn,resnet18-cifar, got {text!r}"
        )
    unknown = [name for name in names if name not in models.ARCHITECTURES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {', '.join(map(repr, unknown))}; choose from {', '.join(models.ARCHITECTURES)}"
        )
    return ",".join(names)


def oe_source(text: str) -> str:
    """An argparse type: an OE source that :func:`ood_explain.core.data.load_oe` knows."""
    try:
        return data.check_oe_source(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def device_name(text: str) -> str:
    """An argparse type: "auto", "cpu", or a CUDA (or Apple MPS) device that this machine has."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    usable = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if device is None or device.type not in usable:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or auto")
    if not usable[device.type]:
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has no usable {device.type.upper()} device; use cpu or auto"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; use one of them, cpu or auto"
        )
    return text


def _writable_place(text: str, what: str) -> Path:
    """`text` as a path whose nearest existing ancestor is a folder we may write to (`what` names it)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"needs {what}, got an empty path")
    path = Path(text).absolute()  # as the run will use it (no ~ expansion)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, so {text} cannot be made; choose another path")
    folder = existing if existing.is_dir() else existing.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {folder} (no permission); choose a folder you can write to")
    return path


def output_folder(text: str) -> str:
    """An argparse type: a folder to write into, existing or not (but not a file)."""
    if _writable_place(text, "a folder").is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; choose a folder (it is made if missing)")
    return text


def output_file(text: str) -> str:
    """An argparse type: a file to write (not an existing folder)."""
    if _writable_place(text, "a file name").is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file inside it, e.g. {Path(text) / 'out.json'}")
    return text


# ------------------------------------------------------------------------------------------------------- commands


def _add_run_options(parser: argparse.ArgumentParser, single: bool) -> None:
    parser.add_argument("--dataset", default="digits", help=f"one of {', '.join(data.DATASETS)}")
    parser.add_argument("--protocol", default="one-vs-rest", choices=data.PROTOCOLS)
    if single:
        parser.add_argument(
            "--normal-class",
            type=non_negative_int,
            default=0,
            help="class index: the normal class (one-vs-rest) or the held-out class (leave-one-out)",
        )
        parser.add_argument("--method", default="oecl", help=f"one of {', '.join(methods.names())}")
    else:
        parser.add_argument("--methods", default="simclr,self-oecl,oecl", help="comma-separated methods")
        parser.add_argument(
            "--classes", type=class_indices, default=None, help="comma-separated class indices (default: all)"
        )
    parser.add_argument(
        "--oe",
        type=oe_source,
        default=None,
        help="OE source: a dataset name, imagefolder:DIR, photos, or outlier-classes",
    )
    parser.add_argument("--oe-shots", type=positive_int, default=None, help="few-shot OE: keep K images per OE class")
    parser.add_argument("--preset", default="lite", choices=list(experiments.PRESETS))
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="override the preset's epochs (the warm-up keeps its share unless --warmup-epochs)",
    )
    parser.add_argument(
        "--warmup-epochs", type=non_negative_int, default=None, help="epochs with alpha = 0 at the start"
    )
    parser.add_argument(
        "--batch-size",
        type=at_least_two,
        default=None,
        help="ID images per step (self-OECL makes two ID instances of each); default: the preset's",
    )
    parser.add_argument("--arch", default=None, choices=models.ARCHITECTURES)
    parser.add_argument("--views", type=non_negative_int, default=None, help="random test-time views per image")
    parser.add_argument(
        "--alpha",
        type=non_negative_finite_float,
        default=experiments.RunConfig.alpha,
        help="weight of the OE norm term",
    )
    parser.add_argument("--lr", type=positive_finite_float, default=experiments.RunConfig.lr)
    parser.add_argument(
        "--weight-decay",
        type=non_negative_finite_float,
        default=experiments.RunConfig.weight_decay,
        help="SGD weight decay (L2 penalty on all weights)",
    )
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        help=f"several seeds, each in its own seed-S folder: {sweeps.SEEDS_HELP}",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="independent runs side by side as single-thread CPU processes"
    )
    parser.add_argument("--data-root", default=None, help="data folder (default: $OOD_EXPLAIN_DATA or ./data)")
    parser.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    parser.add_argument("--image-size", type=positive_int, default=None, help="resize images to NxN (ImageFolder data)")
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--out", type=output_folder, required=True, help="run folder (sweep: root folder)")
    _add_method_params(parser)


def _add_method_params(parser: argparse.ArgumentParser) -> None:
    """One option ``--NAME`` per hyper-parameter a registered method declares (:attr:`Method.params`), unless
    a built-in option has that name already."""
    taken = set(parser._option_string_actions)
    declared: dict[str, list[str]] = {}
    for name in methods.names():
        for param in methods.get(name).params:
            declared.setdefault(param, []).append(name)
    for param, owners in declared.items():
        flag = "--" + param.replace("_", "-")
        if flag in taken:
            continue
        defaults = ", ".join(f"{m}: {methods.get(m).params[param]!r}" for m in owners)
        parser.add_argument(
            flag,
            dest=f"method_param_{param}",
            default=None,
            help=f"hyper-parameter of {', '.join(owners)} (default {defaults})",
        )


def _method_params(args: argparse.Namespace) -> dict | None:
    """The method hyper-parameters given on the command line (``--NAME VALUE`` of :func:`_add_method_params`)."""
    given = {
        key.removeprefix("method_param_"): value
        for key, value in vars(args).items()
        if key.startswith("method_param_") and value is not None
    }
    return given or None


def _config_from(args: argparse.Namespace, single: bool) -> experiments.RunConfig:
    return experiments.RunConfig(
        dataset=args.dataset,
        protocol=args.protocol,
        normal_class=args.normal_class if single else 0,
        method=args.method if single else "simclr",
        oe=args.oe,
        oe_shots=args.oe_shots,
        preset=args.preset,
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        batch_size=args.batch_size,
        arch=args.arch,
        views=args.views,
        alpha=args.alpha,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        data_root=args.data_root,
        download=args.download,
        image_size=args.image_size,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        out=args.out,
        method_params=_method_params(args),
    )


def _print_metrics(metrics: dict) -> None:
    print(
        f"main score {metrics['score']}: AUROC {metrics['auroc']:.4f}  AUPR-in {metrics['aupr_in']:.4f}  "
        f"AUPR-out {metrics['aupr_out']:.4f}  FPR@95 {metrics['fpr95']:.4f}"
    )
    for name, block in metrics["scores"].items():
        print(f"  {name:>13}: AUROC {block['auroc']:.4f}")


def command_run(args: argparse.Namespace) -> None:
    config = _config_from(args, single=True)
    if args.seeds is not None:  # one folder per seed, then mean ± std of the main score
        seeds = args.seeds
        configs = [dataclasses.replace(config, seed=s, out=str(Path(args.out) / f"seed-{s}")) for s in seeds]
        # the reuse rule (experiments.reusable) for every seed before any run starts
        todo = configs if args.restart else [c for c in configs if not experiments.reusable(c)]
        if args.jobs > 1 and todo and not args.restart:
            sweeps.run_in_subprocesses(todo, [{"OMP_NUM_THREADS": "1"}] * args.jobs)
        else:
            for c in todo:
                experiments.run_experiment(c, resume=not args.restart)
        aurocs = [experiments.Run.load(c.out).auroc() for c in configs]
        for seed, value in zip(seeds, aurocs):
            print(f"seed {seed}: AUROC {value:.4f}")
        spread = f" ± {statistics.stdev(aurocs):.4f} (sample std)" if len(aurocs) > 1 else ""
        print(f"main score, {len(aurocs)} seed(s): AUROC {statistics.mean(aurocs):.4f}{spread}")
        print(f"run folders: {args.out}/seed-*")
        return
    with distributed.launched(args.device):  # a process group when started by torchrun, else nothing
        run = experiments.run_experiment(config, resume=not args.restart)
    if run is not None:
        _print_metrics(run.metrics)
        print(f"run folder: {args.out}")


def command_sweep(args: argparse.Namespace) -> None:
    with distributed.launched(args.device):
        sweeps.sweep(
            _config_from(args, single=False),
            args.methods.split(","),
            args.out,
            args.classes,
            seeds=args.seeds or [args.seed],
            jobs=args.jobs,
            restart=args.restart,
        )
    if not distributed.is_main():
        return
    print((Path(args.out) / "results.md").read_text())
    print(f"results: {Path(args.out) / 'results.md'}")


def command_report(args: argparse.Namespace) -> None:
    from ood_explain.teaching.viz import write_report

    path = write_report(args.run_dir)
    print(f"report: {path}")


def command_tensorboard(args: argparse.Namespace) -> None:
    for folder in tensorboard_export.export(args.runs, args.logdir, args.max_images):
        print(f"wrote {folder}")
    print(f"view: tensorboard --logdir {args.logdir}")


def write_figures(write: Callable[[types.ModuleType], object]) -> None:
    """Print what `write` (a report writer of :mod:`ood_explain.teaching.viz`) wrote, or, without the
    notebooks extra, that the tables are written and the figures need it."""
    try:
        from ood_explain.teaching import viz
    except ModuleNotFoundError as missing:
        print(f"figures not written: {missing}")
        return
    print(write(viz))


def command_quickstart(args: argparse.Namespace) -> None:
    from ood_explain.experiments.quickstart import TITLE, quickstart

    out = quickstart(
        args.out,
        classes=args.classes,
        data_root=args.data_root,
        preset=args.preset,
        seeds=args.seeds,
        jobs=args.jobs,
        restart=args.restart,
    )
    write_figures(lambda viz: f"report: {viz.write_comparison_report(out, title=TITLE)}")


def command_reproduce(args: argparse.Namespace) -> None:
    from ood_explain.experiments.reproduce import STUDIES, budget_root, budget_study, reproduce

    if args.name in STUDIES:  # a budget study: its own budgets, classes and preset
        root = Path(args.out) if args.out else budget_root(args.name)
        table = budget_study(
            args.name,
            out=root,
            data_root=args.data_root,
            seeds=args.seeds or 3,
            jobs=args.jobs,
            steps=args.steps,
            methods=args.methods.split(",") if args.methods else None,
            classes=args.classes,
            restart=args.restart,
        )
        write_figures(lambda viz: viz.write_budget_report(table, root))
        return
    reproduce(
        args.name,
        preset=args.preset,
        out=args.out,
        data_root=args.data_root,
        oe=args.oe,
        classes=args.classes,
        methods=args.methods.split(",") if args.methods else None,
        device=args.device,
        jobs_per_gpu=args.jobs_per_gpu,
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        compile=args.compile,
        seeds=args.seeds or 1,
        jobs=args.jobs,
        restart=args.restart,
    )


def command_claims(args: argparse.Namespace) -> None:
    from ood_explain.teaching.claims import notebook_claims

    table = notebook_claims(args.seeds, args.out, args.runs, progress=False)
    print((Path(args.out) / "claims.md").read_text())
    print(f"{len(table)} claims -> {Path(args.out) / 'claims.csv'}")


def command_check_notebooks(args: argparse.Namespace) -> None:
    from ood_explain.teaching.notebook_check import check_notebooks, report

    if args.report_only:
        report(args.out)
    else:
        check_notebooks(args.out, args.runs, args.notebooks.split(",") if args.notebooks else None, args.timeout)
    print(f"report: {Path(args.out) / 'check.md'}")


def command_bench(args: argparse.Namespace) -> None:
    bench.main(args)


RESTART_HELP = (
    "train from scratch: clear the run folder(s) first, also a finished run made with other settings "
    "(without it such a folder is refused)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ood-explain", description=__doc__)
    parser.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import MODULE first: its methods become choices (also $OOD_EXPLAIN_PLUGINS and the "
        "ood_explain.methods entry points); it reaches subprocesses too",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate one configuration")
    _add_run_options(run, single=True)
    run.add_argument("--restart", action="store_true", help=RESTART_HELP)
    run.set_defaults(func=command_run)

    sweep = commands.add_parser(
        "sweep", help="run every class of a protocol (finished runs of the same settings are skipped)"
    )
    _add_run_options(sweep, single=False)
    sweep.add_argument("--restart", action="store_true", help=RESTART_HELP)
    sweep.set_defaults(func=command_sweep)

    report = commands.add_parser("report", help="write RUN_DIR/report.html (plotly figures)")
    report.add_argument("run_dir")
    report.set_defaults(func=command_report)

    board = commands.add_parser(
        "tensorboard", help="export run folders to TensorBoard logs: history, metrics, score histograms, projector"
    )
    board.add_argument("runs", nargs="+", metavar="RUN", help="run folders (written by run, sweep, reproduce, ...)")
    board.add_argument("--logdir", type=output_folder, required=True, help="one subfolder per run: LOGDIR/RUN_NAME")
    board.add_argument(
        "--max-images",
        type=non_negative_int,
        default=1000,
        help="test images in the projector's z and h embeddings, half ID and half OOD (default %(default)s; 0: none)",
    )
    board.set_defaults(func=command_tensorboard)

    quick = commands.add_parser("quickstart", help="SimCLR vs self-OECL vs OECL on scikit-learn's digits, offline")
    quick.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="default: runs/quickstart (lite preset), else runs/quickstart-PRESET",
    )
    quick.add_argument("--classes", type=class_indices, default="0,1,3")
    quick.add_argument("--data-root", default=None)
    quick.add_argument("--preset", default="lite", choices=list(experiments.PRESETS), help="smoke: seconds")
    quick.add_argument("--seeds", type=seed_list, default=[0, 1, 2], help=sweeps.SEEDS_HELP + " (default: 3)")
    quick.add_argument(
        "--jobs",
        type=positive_int,
        default=min(usable_cores(), 27),
        help="runs side by side as single-thread CPU processes (default: one per usable core, here %(default)s)",
    )
    quick.add_argument("--restart", action="store_true", help=RESTART_HELP)
    quick.set_defaults(func=command_quickstart)

    reproduce = commands.add_parser("reproduce", help="run a named paper table end to end (resumable)")
    reproduce.add_argument(
        "name",
        help="a table (fashion-mnist-one-vs-rest, cifar10-one-vs-rest, cifar10-leave-one-out, "
        "...) or a study (fashion-mnist-budget)",
    )
    reproduce.add_argument("--preset", default="paper", choices=list(experiments.PRESETS))
    reproduce.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="default: runs/reproduce/NAME-PRESET[-N-epochs][-oe-SOURCE when not the table's]",
    )
    reproduce.add_argument("--oe", type=oe_source, default=None, help="override the table's OE source")
    reproduce.add_argument("--classes", type=class_indices, default=None)
    reproduce.add_argument("--methods", default=None)
    reproduce.add_argument("--data-root", default=None)
    reproduce.add_argument("--device", type=device_name, default="auto")
    reproduce.add_argument("--jobs-per-gpu", type=positive_int, default=1, help="concurrent one-class runs per GPU")
    reproduce.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="override the preset's epochs, e.g. for a time-limited GPU (recorded in the table)",
    )
    reproduce.add_argument(
        "--warmup-epochs",
        type=non_negative_int,
        default=None,
        help="default: the preset's share of --epochs (paper: 5%%)",
    )
    reproduce.add_argument("--compile", action="store_true", help="torch.compile each run's model")
    reproduce.add_argument(
        "--steps",
        type=step_budgets,
        default=None,
        help="budget studies: comma-separated budgets in optimizer steps (default: the study's)",
    )
    reproduce.add_argument(
        "--seeds", type=seed_list, default=None, help=sweeps.SEEDS_HELP + "; default: 1 for tables, 3 for studies"
    )
    reproduce.add_argument(
        "--jobs", type=positive_int, default=1, help="runs side by side as single-thread CPU processes"
    )
    reproduce.add_argument("--restart", action="store_true", help=RESTART_HELP)
    reproduce.set_defaults(func=command_reproduce)

    claims = commands.add_parser("claims", help="the numbers the notebooks' prose quotes, over seeds (lite, digits)")
    claims.add_argument("--seeds", type=seed_list, default=list(range(10)), help="a count (10 -> seeds 0-9) or a list")
    claims.add_argument("--out", type=output_folder, default="results/notebook-claims")
    claims.add_argument("--runs", type=output_folder, default="runs/notebook-claims", help="the run folders")
    claims.set_defaults(func=command_claims)

    check = commands.add_parser(
        "check-notebooks",
        help="run notebooks 00-05 in lite mode and count how many of the ranges and statements their prose quotes held",
    )
    check.add_argument(
        "--out", type=output_folder, default="runs/notebook-check", help="executed notebooks, check.md and check.json"
    )
    check.add_argument("--runs", type=output_folder, default=None, help="the notebooks' runs (default: OUT/runs)")
    check.add_argument("--notebooks", default=None, help="comma-separated prefixes, e.g. 00,03 (default: 00-05)")
    check.add_argument("--timeout", type=positive_int, default=3600, help="seconds per cell")
    check.add_argument(
        "--report-only",
        action="store_true",
        help="judge the values an earlier check logged in --out against the current claims files",
    )
    check.set_defaults(func=command_check_notebooks)

    bench = commands.add_parser("bench", help="training throughput: our pipeline vs a reference-style one")
    bench.add_argument("--device", type=device_name, default="auto")
    bench.add_argument(
        "--arch",
        type=architectures,
        default="small-cnn,resnet18-cifar",
        help=f"comma-separated architectures, of {', '.join(models.ARCHITECTURES)}",
    )
    bench.add_argument("--batch-size", type=positive_int, default=64, help="ID images per step (2 views each)")
    bench.add_argument("--steps", type=positive_int, default=10, help="timed steps per pipeline and round")
    bench.add_argument("--warmup", type=non_negative_int, default=2, help="untimed steps before each timed block")
    bench.add_argument("--rounds", type=positive_int, default=2, help="alternating rounds; the best is reported")
    bench.add_argument(
        "--workers", type=non_negative_int, default=2, help="DataLoader workers of the reference pipeline"
    )
    bench.add_argument("--images", type=positive_int, default=2048, help="images decoded into memory")
    bench.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure our pipeline under torch.compile (default: on; the first steps compile)",
    )
    bench.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    bench.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="our pipeline's precision (auto: train.autocast_dtype's choice); the reference is fp32",
    )
    bench.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each training step on a fixed batch (model only, no data pipeline) and "
        "split the ratio into model step x input pipeline",
    )
    bench.add_argument("--augment-only", action="store_true", help="only ours vs kornia vs torchvision augmentation")
    bench.add_argument(
        "--json", type=output_file, default=None, metavar="OUT", help="also write every figure to this JSON file"
    )
    bench.add_argument("--data-root", default=None)
    bench.set_defaults(func=command_bench)

    from ood_explain.tools.gpu_check import command_export_subset  # the data that travels to a GPU machine (issue 19)

    subset = commands.add_parser(
        "export-subset",
        help="write a class-balanced uint8 .npz subset of a dataset (read it with --data-root FILE.npz)",
    )
    subset.add_argument("dataset", choices=[name for name in data.DATASETS if name != "digits"])
    subset.add_argument("--train", type=positive_int, default=10_000, help="training images (default 10,000)")
    subset.add_argument("--test", type=positive_int, default=2_000, help="test images (default 2,000)")
    subset.add_argument("--seed", type=seed_int, default=0, help="which images of each class are chosen")
    subset.add_argument("--out", type=output_file, required=True, help="the .npz file, e.g. data/cifar10-subset.npz")
    subset.add_argument("--data-root", default=None, help="where the dataset is (default: $OOD_EXPLAIN_DATA or ./data)")
    subset.set_defaults(func=command_export_subset)
    classroom_cli.add_commands(commands)
    return parser


def split_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the modules of every ``--plugin MODULE`` or ``--plugin=MODULE`` in `argv`, the other words): the
    option may stand anywhere, before or after the command."""
    found, rest, words = [], [], iter(argv)
    for word in words:
        if word == "--plugin":
            found.append(next(words, ""))
        elif word.startswith("--plugin="):
            found.append(word.split("=", 1)[1])
        else:
            rest.append(word)
    return found, rest


def main(argv: list[str] | None = None) -> int:
    plugins, argv = split_plugins(list(sys.argv[1:] if argv is None else argv))
    try:  # plugins first: their methods and hyper-parameters become choices and options of the parser
        if "" in plugins:
            raise ImportError("--plugin needs a module name, e.g. --plugin my_package.methods")
        methods.use_plugins(plugins)
    except ImportError as error:
        print(f"ood-explain: error: {error}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    # User and environment errors (bad values, missing or unreadable files, a full disk, failed runs, a run
    # folder in use): one line. Anything else is a bug and keeps its traceback.
    except (
        ValueError,
        OSError,
        data.CorruptImageError,
        FloatingPointError,
        bench.CompileFailed,
        RunsFailed,
        experiments.RunFolderInUse,
        tensorboard_export.TensorBoardMissing,
    ) as error:
        print(f"ood-explain: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ood-explain: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
