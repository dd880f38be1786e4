"""``ood-explain tensorboard``: a run folder exported to TensorBoard logs, read back with TensorBoard's own
reader (scalars, histograms, text, hparams) and its projector config (z and h, metadata, sprites)."""

from __future__ import annotations

import math
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from google.protobuf import text_format
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

from ood_explain import cli
from ood_explain.experiments import RunConfig
from ood_explain.experiments import runs as experiments
from ood_explain.tools import tensorboard

MAX_IMAGES = 30  # of 40 ID and 40 OOD test images


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished OECL smoke run folder (digits class 0, photo OE: history with OE ‖z‖ and α; ~8 s, hence the
    slow marks)."""
    out = tmp_path_factory.mktemp("tensorboard") / "oecl-0"
    config = RunConfig(
        dataset="digits",
        method="oecl",
        oe="photos",
        preset="smoke",
        device="cpu",
        out=str(out),
        test_limit=40,
        train_eval_limit=40,
    )
    experiments.run_experiment(config, progress=False)
    return out


@pytest.fixture(scope="module")
def exported(run_folder, tmp_path_factory):
    """(the log folder of the run, TensorBoard's reader of it)."""
    log = tensorboard.export_run(run_folder, tmp_path_factory.mktemp("logs"), max_images=MAX_IMAGES)
    reader = event_accumulator.EventAccumulator(
        str(log), size_guidance={kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    )
    reader.Reload()
    return log, reader


@pytest.mark.slow
def test_history_and_metrics_are_scalars(run_folder, exported):
    log, reader = exported
    assert log.name == run_folder.name  # LOG_DIR/<run name>
    history = pd.read_csv(run_folder / "history.csv")
    run = experiments.Run.load(run_folder)
    tags = set(reader.Tags()["scalars"])
    for column in ("loss", "id_norm", "oe_norm", "alpha", "lr", "seconds"):
        events = reader.Scalars(f"train/{column}")
        assert [e.step for e in events] == history["epoch"].tolist()
        assert np.allclose([e.value for e in events], history[column])
    last = int(run.metrics["epochs"])
    for name in ("auroc", "aupr_in", "aupr_out", "fpr95", "train_seconds", "eval_seconds"):
        (event,) = reader.Scalars(f"test/{name}")
        assert event.step == last and math.isclose(event.value, run.metrics[name], rel_tol=1e-6)
    for score, block in run.metrics["scores"].items():
        assert {f"test/{score}/{name}" for name in block} <= tags
    assert {"norm", "norm_of_mean", "cosine_nn", "knn"} <= set(run.metrics["scores"])


@pytest.mark.slow
def test_scores_are_histograms_of_id_and_ood(run_folder, exported):
    _, reader = exported
    run = experiments.Run.load(run_folder)
    expected = {f"scores/{score}/{side}" for score in run.metrics["scores"] for side in ("id", "ood")}
    assert set(reader.Tags()["histograms"]) == expected
    id_values, ood_values = run.split("norm")
    assert reader.Histograms("scores/norm/id")[0].histogram_value.num == len(id_values) == 40
    assert reader.Histograms("scores/norm/ood")[0].histogram_value.num == len(ood_values) == 40


@pytest.mark.slow
def test_config_is_text_and_hparams(exported):
    _, reader = exported
    assert "config/text_summary" in reader.Tags()["tensors"]
    text = reader.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"method": "oecl"' in text
    content = reader.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["method"].string_value == "oecl" and hparams["oe"].string_value == "photos"
    assert hparams["epochs"].number_value == 2 and hparams["oe_shots"].string_value == "none"
    assert "out" not in hparams and "method_params" not in hparams


@pytest.mark.slow
def test_projector_has_z_and_h_with_metadata_and_sprites(run_folder, exported):
    log, _ = exported
    config = text_format.Parse((log / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == ["z:00002", "h:00002"]
    table = pd.read_csv(run_folder / "scores.csv")
    index = tensorboard.embedding_sample(table["is_id"].to_numpy().astype(bool), MAX_IMAGES, seed=0)
    chosen = table.iloc[index]
    for embedding, width in zip(config.embeddings, (128, 128)):  # small-cnn: z and h of 128 dimensions
        metadata = pd.read_csv(log / embedding.metadata_path, sep="\t", dtype={"class": str})
        assert list(metadata.columns) == ["side", "class", "norm_of_mean"]
        assert len(metadata) == MAX_IMAGES and (metadata["side"] == "ID").sum() == MAX_IMAGES // 2
        assert metadata["side"].tolist() == ["ID" if i else "OOD" for i in chosen["is_id"]]
        assert metadata["class"].tolist() == chosen["label"].astype(str).tolist()  # digits: class names are 0-9
        assert np.allclose(metadata["norm_of_mean"], chosen["norm_of_mean"], rtol=1e-3)
        vectors = np.loadtxt(log / embedding.tensor_path, delimiter="\t")
        assert vectors.shape == (MAX_IMAGES, width)
        assert list(embedding.sprite.single_image_dim) == [28, 28]
        sprite = Image.open(log / embedding.sprite.image_path)
        assert sprite.size == (28 * math.ceil(math.sqrt(MAX_IMAGES)),) * 2


def test_embedding_sample_is_balanced_seeded_and_fills_in():
    is_id = np.array([True] * 5 + [False] * 50)
    sample = tensorboard.embedding_sample(is_id, 20, seed=3)
    assert len(sample) == 20 and is_id[sample].sum() == 5  # too few ID: OOD fills in
    assert np.array_equal(sample, tensorboard.embedding_sample(is_id, 20, seed=3))
    assert not np.array_equal(sample, tensorboard.embedding_sample(is_id, 20, seed=4))
    assert len(tensorboard.embedding_sample(is_id, 1000, seed=0)) == 55


@pytest.mark.slow
def test_cli_writes_and_replaces_an_earlier_export(run_folder, tmp_path, capsys):
    for _ in range(2):
        assert cli.main(["tensorboard", str(run_folder), "--logdir", str(tmp_path), "--max-images", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'oecl-0'}" in printed and f"tensorboard --logdir {tmp_path}" in printed
    assert len(list((tmp_path / "oecl-0").glob("events.out.tfevents.*"))) == 1
    assert not (tmp_path / "oecl-0" / "projector_config.pbtxt").exists()  # --max-images 0: no embeddings


@pytest.mark.slow
def test_without_embeddings_no_checkpoint_is_needed_and_clashing_names_keep_their_parents(run_folder, tmp_path):
    folders = [tmp_path / side / "seed-0" for side in ("a", "b")]
    for folder in folders:
        folder.parent.mkdir()
        copy_without_checkpoint(run_folder, folder)
    written = tensorboard.export(folders, tmp_path / "logs", max_images=0)
    assert written == [tmp_path / "logs" / "a" / "seed-0", tmp_path / "logs" / "b" / "seed-0"]
    assert all(any(folder.glob("events.out.tfevents.*")) for folder in written)


def copy_without_checkpoint(run_folder, to):
    to.mkdir()
    for name in experiments.RESULT_FILES:
        shutil.copy(run_folder / name, to / name)
    return to


@pytest.mark.slow
def test_a_folder_that_is_not_a_run_is_one_line_naming_it(run_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "empty", "is not a finished run folder: missing config.json"),
        (tmp_path / "absent", "is not a folder"),
        (copy_without_checkpoint(run_folder, tmp_path / "no-checkpoint"), "has no checkpoint.pt"),
    ]
    for folder, message in cases:
        code = cli.main(["tensorboard", str(run_folder), str(folder), "--logdir", str(tmp_path / "logs")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err and str(folder) in err, err
    assert not (tmp_path / "logs").exists()  # every folder is checked before any is written


@pytest.mark.slow
def test_scores_that_the_config_no_longer_rebuilds_are_refused(run_folder, tmp_path):
    folder = copy_without_checkpoint(run_folder, tmp_path / "changed")
    shutil.copy(run_folder / "checkpoint.pt", folder / "checkpoint.pt")
    table = pd.read_csv(folder / "scores.csv")
    table.loc[len(table) - 1, "label"] = 0 if table["label"].iloc[-1] else 1
    table.to_csv(folder / "scores.csv", index=False)
    with pytest.raises(ValueError, match="are not the rows of its scores.csv"):
        tensorboard.export_run(folder, tmp_path / "logs", max_images=MAX_IMAGES)


@pytest.mark.slow
def test_without_tensorboard_the_error_names_the_extra(run_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard: ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    code = cli.main(["tensorboard", str(run_folder), "--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "tensorboard is not installed" in err and "pip install 'ood-explain[tensorboard]'" in err
