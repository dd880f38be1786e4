"""The ``ood-explain`` command line: run, sweep, report, quickstart, reproduce, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import bench, data, distributed, experiments
from .reproduce import RunsFailed
from .train import METHODS


def _add_run_options(parser: argparse.ArgumentParser, single: bool) -> None:
    parser.add_argument("--dataset", default="digits", help=f"one of {', '.join(data.DATASETS)}")
    parser.add_argument("--protocol", default="one-vs-rest", choices=data.PROTOCOLS)
    if single:
        parser.add_argument("--normal-class", type=int, default=0,
                            help="class index: the normal class (one-vs-rest) or the held-out class (leave-one-out)")
        parser.add_argument("--method", default="oecl", help=f"one of {', '.join(METHODS)}")
    else:
        parser.add_argument("--methods", default="simclr,self-oecl,oecl", help="comma-separated methods")
        parser.add_argument("--classes", default=None, help="comma-separated class indices (default: all)")
    parser.add_argument("--oe", default=None,
                        help="OE source: a dataset name, imagefolder:DIR, photos, or outlier-classes")
    parser.add_argument("--oe-shots", type=int, default=None, help="few-shot OE: keep K images per OE class")
    parser.add_argument("--preset", default="lite", choices=list(experiments.PRESETS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the preset's epochs (the warm-up keeps its share unless --warmup-epochs)")
    parser.add_argument("--warmup-epochs", type=int, default=None, help="epochs with alpha = 0 at the start")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--arch", default=None, choices=["small-cnn", "resnet18-cifar", "resnet18"])
    parser.add_argument("--views", type=int, default=None, help="random test-time views per image")
    parser.add_argument("--alpha", type=float, default=1.0, help="weight of the OE norm term")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="data folder (default: $OOD_EXPLAIN_DATA or ./data)")
    parser.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    parser.add_argument("--image-size", type=int, default=None, help="resize images to NxN (ImageFolder data)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--out", required=True, help="run folder (sweep: root folder)")


def _config_from(args: argparse.Namespace, single: bool) -> experiments.RunConfig:
    return experiments.RunConfig(
        dataset=args.dataset, protocol=args.protocol, normal_class=args.normal_class if single else 0,
        method=args.method if single else "simclr", oe=args.oe, oe_shots=args.oe_shots, preset=args.preset,
        epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, arch=args.arch,
        views=args.views, alpha=args.alpha, lr=args.lr, seed=args.seed, data_root=args.data_root,
        download=args.download, image_size=args.image_size, device=args.device, precision=args.precision,
        compile=args.compile, out=args.out,
    )


def _print_metrics(metrics: dict) -> None:
    print(f"main score {metrics['score']}: AUROC {metrics['auroc']:.4f}  AUPR-in {metrics['aupr_in']:.4f}  "
          f"AUPR-out {metrics['aupr_out']:.4f}  FPR@95 {metrics['fpr95']:.4f}")
    for name, block in metrics["scores"].items():
        print(f"  {name:>13}: AUROC {block['auroc']:.4f}")


def command_run(args: argparse.Namespace) -> None:
    with distributed.launched(args.device):  # a process group when started by torchrun, else nothing
        metrics = experiments.run_experiment(_config_from(args, single=True), resume=not args.restart)
    if metrics:
        _print_metrics(metrics)
        print(f"run folder: {args.out}")


def command_sweep(args: argparse.Namespace) -> None:
    classes = [int(k) for k in args.classes.split(",")] if args.classes else None
    with distributed.launched(args.device):
        table = experiments.sweep(_config_from(args, single=False), args.methods.split(","), args.out, classes)
    if not distributed.is_main():
        return
    print((table * 100).round(1).to_markdown())
    print(f"results: {Path(args.out) / 'results.md'}")


def command_report(args: argparse.Namespace) -> None:
    from .viz import write_report

    path = write_report(args.run_dir)
    print(f"report: {path}")


def command_quickstart(args: argparse.Namespace) -> None:
    from .quickstart import quickstart

    quickstart(args.out, classes=[int(k) for k in args.classes.split(",")], data_root=args.data_root,
               preset=args.preset)


def command_reproduce(args: argparse.Namespace) -> None:
    from .reproduce import reproduce

    reproduce(args.name, preset=args.preset, out=args.out, data_root=args.data_root, oe=args.oe,
              classes=[int(k) for k in args.classes.split(",")] if args.classes else None,
              methods=args.methods.split(",") if args.methods else None, device=args.device,
              jobs_per_gpu=args.jobs_per_gpu, epochs=args.epochs, warmup_epochs=args.warmup_epochs,
              compile=args.compile)


def command_bench(args: argparse.Namespace) -> None:
    bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ood-explain", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate one configuration")
    _add_run_options(run, single=True)
    run.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    run.set_defaults(func=command_run)

    sweep = commands.add_parser("sweep", help="run every class of a protocol (finished runs are skipped)")
    _add_run_options(sweep, single=False)
    sweep.set_defaults(func=command_sweep)

    report = commands.add_parser("report", help="write RUN_DIR/report.html (plotly figures)")
    report.add_argument("run_dir")
    report.set_defaults(func=command_report)

    quick = commands.add_parser("quickstart", help="SimCLR vs self-OECL vs OECL on scikit-learn's digits, offline")
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--classes", default="0,1,3")
    quick.add_argument("--data-root", default=None)
    quick.add_argument("--preset", default="lite", choices=list(experiments.PRESETS), help="smoke: seconds")
    quick.set_defaults(func=command_quickstart)

    reproduce = commands.add_parser("reproduce", help="run a named paper table end to end (resumable)")
    reproduce.add_argument("name", help="e.g. fashion-mnist-one-vs-rest, cifar10-one-vs-rest, cifar10-leave-one-out")
    reproduce.add_argument("--preset", default="paper", choices=list(experiments.PRESETS))
    reproduce.add_argument("--out", default=None, help="default: runs/reproduce/NAME-PRESET")
    reproduce.add_argument("--oe", default=None, help="override the table's OE source")
    reproduce.add_argument("--classes", default=None)
    reproduce.add_argument("--methods", default=None)
    reproduce.add_argument("--data-root", default=None)
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--jobs-per-gpu", type=int, default=1, help="concurrent one-class runs per GPU")
    reproduce.add_argument("--epochs", type=int, default=None,
                           help="override the preset's epochs, e.g. for a time-limited GPU (recorded in the table)")
    reproduce.add_argument("--warmup-epochs", type=int, default=None,
                           help="default: the preset's share of --epochs (paper: 5%%)")
    reproduce.add_argument("--compile", action="store_true", help="torch.compile each run's model")
    reproduce.set_defaults(func=command_reproduce)

    bench = commands.add_parser("bench", help="training throughput: our pipeline vs a reference-style one")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--arch", default="small-cnn,resnet18-cifar", help="comma-separated architectures")
    bench.add_argument("--batch-size", type=int, default=64, help="ID images per step (2 views each)")
    bench.add_argument("--steps", type=int, default=10, help="timed steps per pipeline and round")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps before each timed block")
    bench.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is reported")
    bench.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference pipeline")
    bench.add_argument("--images", type=int, default=2048, help="images decoded into memory")
    bench.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                       help="also measure our pipeline under torch.compile (default: on; the first steps compile)")
    bench.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    bench.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                       help="our pipeline's precision (auto: train.autocast_dtype's choice); the reference is fp32")
    bench.add_argument("--breakdown", action="store_true",
                       help="also time each training step on a fixed batch (model only, no data pipeline) and "
                            "split the ratio into model step x input pipeline")
    bench.add_argument("--augment-only", action="store_true", help="only ours vs kornia vs torchvision augmentation")
    bench.add_argument("--json", default=None, metavar="OUT", help="also write every figure to this JSON file")
    bench.add_argument("--data-root", default=None)
    bench.set_defaults(func=command_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    # User and environment errors (bad values, missing or unreadable files, a full disk, failed runs): one
    # line. Anything else is a bug and keeps its traceback.
    except (ValueError, OSError, data.CorruptImageError, FloatingPointError, bench.CompileFailed,
            RunsFailed) as error:
        print(f"ood-explain: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ood-explain: interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
