"""``ood-explain bench`` and the GPU code paths, run on the CPU device so CI covers them: the benchmark's two
pipelines, the augmentation comparison, bf16 autocast choice, a channels_last bf16 training step, batched
test-time views, and the CPU thread limit of the augmentations."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ood_explain import augment, bench, cli, methods, models, scores
from ood_explain import training as train_module
from ood_explain.core.training import TrainConfig, autocast_dtype, batches, make_training_step, train

CPU = torch.device("cpu")


def tiny_images(count: int = 48, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_load_images_reads_cifar_jpegs_or_falls_back_to_random(data_root, tmp_path) -> None:
    pixels, note = bench.load_images(data_root, 20)
    assert pixels.shape == (20, 32, 32, 3) and pixels.dtype == np.uint8
    assert "CIFAR-10" in note and pixels.std() > 10
    bigger, note = bench.load_images(data_root, 3, size=40)
    assert bigger.shape == (3, 40, 40, 3) and "resized" in note
    random_pixels, note = bench.load_images(tmp_path, 5)
    assert random_pixels.shape == (5, 32, 32, 3) and "random" in note


def test_both_pipelines_train_the_same_model_on_cpu() -> None:
    pixels = tiny_images()
    ours = bench.OurPipeline("small-cnn", pixels, CPU, batch_size=8)
    reference = bench.ReferencePipeline("small-cnn", pixels, CPU, batch_size=8, workers=0)
    # same weights; only the place of the input normalization differs (model vs transform)
    shared = {k: v for k, v in ours.model.state_dict().items() if k not in ("mean", "std")}
    assert all(torch.equal(v, reference.model.state_dict()[k]) for k, v in shared.items())
    assert ours.images.dtype == torch.uint8 and ours.precision == "fp32"  # small CNN on CPU: fp32
    assert ours.model.encoder.layers[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    before = ours.model.head[0].weight.detach().clone()
    assert ours.run(warmup=1, steps=2) > 0 and reference.run(warmup=1, steps=1) > 0
    assert not torch.equal(before, ours.model.head[0].weight)  # it trained
    loss_sum = ours.sums.tolist()[0]
    assert np.isfinite(loss_sum) and loss_sum > 0
    # the epoch wraps around: more images than one pass
    ours.run(warmup=0, steps=len(pixels) // 8 + 1)


def test_reference_pipeline_with_a_worker_process_and_two_views() -> None:
    pixels = tiny_images(16)
    reference = bench.ReferencePipeline("small-cnn", pixels, CPU, batch_size=4, workers=1)
    view1, view2 = reference.dataset[0]
    assert view1.shape == (3, 16, 16) and not torch.equal(view1, view2)  # two independent views
    assert reference.run(warmup=1, steps=1) > 0


def test_measure_and_peak_memory_on_cpu() -> None:
    measured = bench.measure("small-cnn", tiny_images(), CPU, batch_size=8, steps=1, workers=0, rounds=2, warmup=1)
    assert list(measured) == ["ours", "reference"]
    ours, reference = measured["ours"], measured["reference"]
    for m in (ours, reference):
        assert len(m.images_per_s) == 2 and m.best > 0
        assert all(mb > 10 for mb in m.peak_mb)  # a Python process with torch holds far more than 10 MB
    assert ours.layout == "channels_last" and reference.layout == "NCHW" and reference.precision == "fp32"
    assert "PSS" in ours.memory or "ru_maxrss" in ours.memory


def test_speedup_factors_multiply_to_the_ratio() -> None:
    def measurement(name: str, *rates: float) -> bench.Measurement:
        return bench.Measurement(name, "small-cnn", "fp32", "NCHW", 8, images_per_s=list(rates))

    measured = {"ours": measurement("ours", 500, 600), "ours_model_only": measurement("ours", 700),
                "reference": measurement("reference", 300, 250), "reference_model_only": measurement("reference", 600)}
    factors = bench.speedup_factors(measured)
    assert factors["ratio"] == pytest.approx(2.0)  # best rounds: 600 / 300
    assert factors["model_step"] == pytest.approx(700 / 600)
    assert factors["model_step"] * factors["input_pipeline"] == pytest.approx(factors["ratio"])
    assert factors["zero_cost_input_ceiling"] == pytest.approx(2.0)  # 600 / 300
    with pytest.raises(KeyError):  # the model-only rows come from measure(..., breakdown=True)
        bench.speedup_factors({"ours": measured["ours"], "reference": measured["reference"]})


def test_augmentation_comparison_ours_kornia_torchvision() -> None:
    result = bench.compare_augmentations(tiny_images(), CPU, batch_size=16, repeats=2)
    assert result["ours_s"] > 0 and result["torchvision_s"] > 0
    if importlib.util.find_spec("kornia") is None:  # kornia is the optional [bench] extra
        assert result["kornia_s"] is None
    else:
        assert result["kornia_s"] > 0
        x = torch.rand(6, 3, 16, 16)
        out = bench.kornia_pipeline(16)(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


def test_bench_command_prints_tables_and_writes_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = cli.build_parser().parse_args([
        "bench", "--device", "cpu", "--arch", "small-cnn", "--batch-size", "8", "--steps", "1", "--rounds", "1",
        "--warmup", "1", "--workers", "0", "--images", "32", "--data-root", str(tmp_path / "none"),
        "--breakdown", "--no-compile", "--json", str(out)])
    args.func(args)
    printed = capsys.readouterr().out
    assert "ratio ours / reference" in printed and "simclr_view" in printed and "random uint8" in printed
    assert "Where the ratio comes from" in printed and "zero-cost-input ceiling" in printed
    report = json.loads(out.read_text())
    figures = report["archs"]["small-cnn"]
    assert figures["ratio"] == figures["ours"]["images_per_s"][0] / figures["reference"]["images_per_s"][0]
    assert figures["factors"]["ratio"] == pytest.approx(figures["ratio"])
    assert report["device"] == "cpu" and report["batch_size"] == 8 and "ours_compiled" not in figures
    assert figures["ours_model_only"]["images_per_s"][0] > 0 and "model step only" in printed


@pytest.mark.slow
def test_bench_with_compile_measures_eager_and_compiled_against_one_reference(tmp_path, capsys) -> None:
    report = bench.run_bench(device="cpu", archs=("small-cnn",), batch_size=4, steps=1, workers=0, rounds=1,
                             warmup=1, images=16, data_root=str(tmp_path), compile=True)
    figures = report["archs"]["small-cnn"]
    compiled = figures["ours_compiled"]
    assert compiled["precision"] == "fp32 + torch.compile" and figures["ours"]["precision"] == "fp32"
    assert figures["ratio_compiled"] == compiled["images_per_s"][0] / figures["reference"]["images_per_s"][0]
    assert "ratio ours compiled / reference" in capsys.readouterr().out


def test_bench_precision_applies_to_our_pipeline_only(tmp_path) -> None:
    args = cli.build_parser().parse_args([
        "bench", "--device", "cpu", "--arch", "small-cnn", "--batch-size", "4", "--steps", "1", "--rounds", "1",
        "--warmup", "1", "--workers", "0", "--images", "16", "--data-root", str(tmp_path), "--no-compile",
        "--precision", "bf16"])
    report = bench.main(args)
    figures = report["archs"]["small-cnn"]
    assert figures["ours"]["precision"] == "bf16 autocast" and figures["reference"]["precision"] == "fp32"
    assert report["precision"] == "bf16"


@pytest.mark.slow
def test_a_failing_torch_compile_is_a_clear_error_naming_the_fix(monkeypatch) -> None:
    def broken_compile(model, **kwargs):
        def fail(*args, **kwargs):
            raise RuntimeError("InductorError: no C++ compiler found\nmore detail")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(bench.CompileFailed, match="no C\\+\\+ compiler.*--no-compile"):
        bench.measure("small-cnn", tiny_images(), CPU, batch_size=8, steps=1, workers=0, rounds=1, warmup=1,
                      compile=True)
    code = cli.main(["bench", "--device", "cpu", "--arch", "small-cnn", "--batch-size", "4", "--steps", "1",
                     "--rounds", "1", "--warmup", "1", "--workers", "0", "--images", "16"])
    assert code == 2  # the CLI prints the message instead of a traceback


def test_autocast_dtype_choices(monkeypatch) -> None:
    cuda = torch.device("cuda")  # a device object only: no GPU needed
    assert autocast_dtype("auto", cuda, arch_is_resnet=False) is torch.bfloat16
    assert autocast_dtype("auto", cuda, arch_is_resnet=True) is torch.bfloat16
    monkeypatch.setattr(train_module, "cpu_has_amx", lambda: True)
    assert autocast_dtype("auto", CPU, arch_is_resnet=True) is torch.bfloat16
    monkeypatch.setattr(train_module, "cpu_has_amx", lambda: False)  # bf16 is slower on CPUs without AMX
    assert autocast_dtype("auto", CPU, arch_is_resnet=True) is None
    assert autocast_dtype("auto", CPU, arch_is_resnet=False) is None
    assert autocast_dtype("fp32", cuda, arch_is_resnet=True) is None
    assert autocast_dtype("bf16", CPU, arch_is_resnet=False) is torch.bfloat16


def test_channels_last_bf16_training_step_on_cpu() -> None:
    """The GPU configuration (bf16 autocast + channels_last) through train() on the CPU device."""
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 3)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    oe = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    config = TrainConfig(method="oecl", epochs=1, batch_size=8, max_steps_per_epoch=2, precision="bf16",
                         channels_last=True)
    history = train(model, images, config, oe_images=oe, progress=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"]) and np.isfinite(history[0]["oe_norm"])
    assert model.encoder.layers[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a bf16 model


def test_extract_features_with_views_and_bf16_on_cpu() -> None:
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 3)
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    features = scores.extract_features(model, images, views=4, batch_size=4, seed=1, autocast=torch.bfloat16)
    assert features.z.dtype == torch.float32 and features.z_views.shape == (4, 10, 128)
    assert torch.isfinite(features.z_views).all()
    fp32 = scores.extract_features(model, images, views=4, batch_size=4, seed=1)
    torch.testing.assert_close(features.z, fp32.z, rtol=0.05, atol=0.05)  # bf16 rounding only


def test_cpu_thread_limit_of_augmentations_keeps_results_and_restores_threads() -> None:
    threads = torch.get_num_threads()
    small = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    with augment.cpu_threads_for(small):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    with augment.cpu_threads_for(small, values_per_thread=1):  # large enough: no limit
        assert torch.get_num_threads() == threads
    first = augment.simclr_view(small, augment.make_generator(3))
    torch.set_num_threads(1)
    try:
        again = augment.simclr_view(small, augment.make_generator(3))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(first, again)


# Ops that make a GPU wait for the host (or the host for the GPU) when they run on CUDA tensors.
SYNCING_OPS = ("aten.lift_fresh", "aten.linalg_inv_ex", "aten._linalg_check_errors", "aten._local_scalar_dense",
               "aten.nonzero", "aten.masked_select", "aten.item")


class RecordOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.syncing: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        boolean_index = name.startswith("aten.index.Tensor") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else []) or [])
        if name.startswith(SYNCING_OPS) or boolean_index:
            self.syncing.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", methods.names())
def test_training_step_has_no_op_that_synchronises_a_gpu(method) -> None:
    """The one training step that train() and the benchmark run (batch, views, forward, loss, backward,
    SGD, running sums), recorded on CPU in the GPU configuration (bf16 autocast, channels_last): no
    .item(), torch.tensor(list), linalg.inv or boolean indexing, each a host-device sync on CUDA."""
    torch.manual_seed(0)
    record = methods.get(method)
    model = models.build_model("small-cnn", 3, with_classifier=record.classifier)
    step = make_training_step(model, TrainConfig(method=method, batch_size=8, precision="bf16"), CPU)
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    oe = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8) if record.external_oe else None
    sums = torch.zeros(3)
    for id_batch, oe_batch in batches(images, oe, 8, 1, 0, 0, step.generator):  # first call: device constants
        sums += step(id_batch, oe_batch, 1.0)
    with RecordOps() as recorder:
        for id_batch, oe_batch in batches(images, oe, 8, 2, 1, 0, step.generator):
            sums += step(id_batch, oe_batch, 1.0)
    assert recorder.syncing == []


def test_the_benchmark_runs_the_training_step_of_train(monkeypatch) -> None:
    calls = []
    real_update = train_module.TrainingStep.update

    def counting_update(self, x, n_id, alpha):
        calls.append(len(x))
        return real_update(self, x, n_id, alpha)

    monkeypatch.setattr(train_module.TrainingStep, "update", counting_update)
    ours = bench.OurPipeline("small-cnn", tiny_images(), CPU, batch_size=8)
    ours.run(warmup=1, steps=2)
    assert calls == [16, 16, 16]  # 2 views of 8 images per step, through the same update as train()
