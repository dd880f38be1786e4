"""A method from another package: found by name in the CLI, in --jobs subprocesses, in reproduce and in a
fresh process's Run.load, with its own hyper-parameter, and replaced or removed in a notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ood_explain import methods

TOY = '''
"""A toy OECL variant with its own hyper-parameter: beta scales the OE norm term."""
from ood_explain import losses, methods


def beta_oecl_loss(forward, alpha, temperature, beta):
    return losses.oecl_loss(forward.z_id, forward.z_oe, temperature, alpha * beta, gather=True)


methods.register(methods.Method("{name}", "OECL with the OE term scaled by beta", methods.two_views_and_oe,
                                beta_oecl_loss, external_oe=True, oe_norm_term=True, params={{"beta": 0.5}}))
'''


@pytest.fixture()
def plugins(tmp_path) -> Path:
    """A folder on which two plugin modules live: `toy_entry` (an installed distribution with an entry point
    of group ood_explain.methods) and `toy_named` (found only when named: --plugin or $OOD_EXPLAIN_PLUGINS)."""
    root = tmp_path / "site"
    for module, name in (("toy_entry", "toy-entry"), ("toy_named", "toy-named")):
        (root / module).mkdir(parents=True)
        (root / module / "__init__.py").write_text(TOY.format(name=name))
    info = root / "toy_entry-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-entry\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ood_explain.methods]\ntoy-entry = toy_entry\n")
    return root


def run(argv: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m ood_explain ARGV` in a fresh process with `site` on its path."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1", **env}
    environment.pop("OOD_EXPLAIN_PLUGINS", None) if "OOD_EXPLAIN_PLUGINS" not in env else None
    return subprocess.run([sys.executable, "-m", "ood_explain", *argv], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


SMOKE = ["--dataset", "digits", "--preset", "smoke", "--oe", "photos"]


@pytest.mark.slow
def test_an_entry_point_method_runs_from_the_cli_with_its_hyper_parameter(plugins, tmp_path):
    out = tmp_path / "entry"
    done = run(["run", "--method", "toy-entry", "--beta", "0.25", *SMOKE, "--out", str(out)], plugins, tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["plugin"] == "toy_entry" and record["run"]["method_params"] == {"beta": 0.25}
    assert record["settings"]["method_params"] == {"beta": 0.25} and record["train"]["method_params"] == {"beta": 0.25}
    helped = run(["run", "--help"], plugins, tmp_path).stdout
    assert "--beta" in helped and "hyper-parameter of toy-entry" in helped
    again = run(["run", "--method", "toy-entry", "--beta", "0.5", *SMOKE, "--out", str(out)], plugins, tmp_path)
    assert again.returncode == 2 and "method_params" in again.stderr  # the reuse rule sees the hyper-parameter
    wrong = run(["run", "--method", "oecl", "--beta", "0.5", *SMOKE, "--out", str(tmp_path / "x")], plugins, tmp_path)
    assert wrong.returncode == 2 and "method 'oecl' has no hyper-parameter 'beta'" in wrong.stderr


@pytest.mark.slow
def test_a_named_plugin_reaches_jobs_subprocesses_reproduce_and_a_fresh_run_load(plugins, tmp_path):
    sweep = tmp_path / "sweep"
    done = run(["--plugin", "toy_named", "sweep", "--methods", "toy-named", "--classes", "0,1", "--jobs", "2",
                *SMOKE, "--out", str(sweep)], plugins, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "toy-named" in (sweep / "results.md").read_text()
    table = tmp_path / "table"
    done = run(["reproduce", "fashion-mnist-one-vs-rest", "--plugin=toy_named", "--methods", "toy-named",
                "--preset", "smoke", "--classes", "0", "--oe", "photos", "--out", str(table)], plugins, tmp_path,
               OOD_EXPLAIN_DATA=os.environ.get("OOD_EXPLAIN_DATA", ""))
    assert done.returncode == 0, done.stderr + done.stdout
    folder = sweep / "toy-named" / "class-1" / "seed-0"
    code = ("from ood_explain import Run; run = Run.load(%r); "
            "print(type(run.model).__name__, run.config.method, run.config.method_params)") % str(folder)
    environment = {**os.environ, "PYTHONPATH": str(plugins)}
    environment.pop("OOD_EXPLAIN_PLUGINS", None)
    loaded = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["ContrastiveModel", "toy-named", "{'beta':", "0.5}"]
    unknown = run(["run", "--method", "toy-named", *SMOKE, "--out", str(tmp_path / "y")], plugins, tmp_path)
    assert unknown.returncode == 2 and "--plugin MODULE or $OOD_EXPLAIN_PLUGINS" in unknown.stderr
    missing = run(["--plugin", "no_such_module", "run", *SMOKE, "--out", str(tmp_path / "z")], plugins, tmp_path)
    assert missing.returncode == 2 and "plugin module 'no_such_module' (named by the plugin list)" in missing.stderr


def test_registering_again_replaces_with_a_note_and_a_method_can_be_removed():
    def record(summary: str) -> methods.Method:
        return methods.Method("notebook-toy", summary, methods.two_views, methods.contrastive_loss)

    methods.register(record("first"))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            methods.register(record("second"))
        assert "method 'notebook-toy' (from tests.test_plugins" in str(caught[0].message) or \
            "method 'notebook-toy' (from test_plugins" in str(caught[0].message)
        assert methods.get("notebook-toy").summary == "second"
    finally:
        methods.unregister("notebook-toy")
    with pytest.raises(ValueError, match="unknown method 'notebook-toy'"):
        methods.get("notebook-toy")


def test_a_method_of_this_process_only_is_refused_before_subprocesses_start(tmp_path):
    from ood_explain import sweeps
    from ood_explain.experiments import RunConfig

    methods.register(methods.Method("main-toy", "defined in a notebook", methods.two_views,
                                    methods.contrastive_loss), source="__main__")
    try:
        config = RunConfig(method="main-toy", preset="smoke", out=str(tmp_path / "run"))
        with pytest.raises(ValueError, match="registered in this process only .*--plugin MODULE"):
            sweeps.run_in_subprocesses([config], [{}, {}])
        assert not (tmp_path / "run.log").exists()
    finally:
        methods.unregister("main-toy")


def test_hyper_parameters_are_checked_and_typed():
    toy = methods.Method("typed", "", methods.two_views, methods.contrastive_loss,
                         params={"beta": 0.5, "steps": 3, "sharp": False})
    assert methods.resolve_params(toy, {"beta": "0.25", "steps": "4", "sharp": "true"}) == \
        {"beta": 0.25, "steps": 4, "sharp": True}
    with pytest.raises(ValueError, match=r"typed steps: expected a int \(default 3\), got 'x'"):
        methods.resolve_params(toy, {"steps": "x"})
    with pytest.raises(ValueError, match="has no hyper-parameter 'gamma' \\(its own: beta, steps, sharp\\)"):
        methods.resolve_params(toy, {"gamma": 1})


def test_the_building_blocks_are_public():
    import ood_explain as ox

    for name in ("Forward", "two_views", "two_views_and_oe", "rotated_views", "nt_xent", "oecl_loss"):
        assert hasattr(ox, name), name
    assert textwrap.dedent(ox.nt_xent.__doc__ or "").count("gather") >= 1
