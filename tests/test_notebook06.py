"""Notebook 06 on a CPU: a plan that ends in minutes, the CLI command for the whole lite table, and
Kernel > Interrupt ending its long cell with one line instead of a traceback (in a real IPython kernel)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
import torch

from ood_explain import notebook
from ood_explain.tools.cli import build_parser


def test_cpu_plan_is_three_lite_runs(monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_FAST", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = notebook.full_experiments_plan()
    assert plan.preset == "lite" and plan.epochs is None and plan.classes == [0]
    assert plan.methods == ["simclr", "self-oecl", "oecl"]
    # 30 CIFAR-10 lite runs took over an hour on a 2-core CPU: at most 3 runs keeps the notebook under 15 min
    assert len(plan.classes) * len(plan.methods) <= 3 and "3 runs" in plan.note


def test_full_table_command_is_a_valid_reproduce_command(tmp_path):
    command = notebook.full_table_command("cifar10-one-vs-rest", tmp_path / "my runs", "photos", seeds=3)
    words = shlex.split(command)
    assert words[:2] == ["ood-explain", "reproduce"]
    args = build_parser().parse_args(words[1:])
    assert (args.name, args.preset, args.methods, args.oe, args.jobs) == (
        "cifar10-one-vs-rest", "lite", "simclr,self-oecl,oecl", "photos", 2)
    assert Path(args.out) == tmp_path / "my runs" and args.classes is None  # every class
    assert "--seeds" not in notebook.full_table_command("cifar10-one-vs-rest", tmp_path)


def test_run_plan_turns_an_interrupt_into_one_line(monkeypatch, tmp_path):
    import ood_explain.experiments.reproduce as reproduce

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "reproduce", interrupted)
    plan = notebook.ExperimentPlan("smoke", None, [0], ["simclr"], "")
    with pytest.raises(notebook.Interrupted) as caught:
        notebook.run_plan("fashion-mnist-one-vs-rest", plan, tmp_path)
    assert isinstance(caught.value, KeyboardInterrupt)  # still stops Run All and scripts
    assert caught.value._render_traceback_() == ["interrupted; run the cell again to resume"]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.slow
def test_interrupting_the_long_cell_in_a_kernel_prints_one_line_and_resumes(tmp_path):
    """Kernel > Interrupt while run_plan trains, in a real IPython kernel: the cell's error output is the one
    line, and running the cell again finishes the table."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        out = tmp_path / "table"
        cell = ("from ood_explain import notebook as nb\n"
                "import torch; torch.set_num_threads(1)\n"
                "plan = nb.ExperimentPlan('smoke', None, [0], ['simclr', 'oecl'], '')\n"
                f"results = nb.run_plan('fashion-mnist-one-vs-rest', plan, {str(out)!r})\n")

        def execute(interrupt_when=None, timeout=300):
            msg_id = client.execute(cell)
            outputs, deadline, interrupted = [], time.monotonic() + timeout, False
            while time.monotonic() < deadline:
                if interrupt_when and not interrupted and interrupt_when():
                    manager.interrupt_kernel()
                    interrupted = True
                try:
                    message = client.get_iopub_msg(timeout=0.2)
                except Exception:  # queue.Empty
                    continue
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                if message["msg_type"] in ("error", "stream"):
                    outputs.append(message)
                if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                    return outputs
            raise TimeoutError("the cell did not finish")

        started = lambda: any(out.glob("*/class-0/seed-0/history.csv")) or any(out.glob("*/class-0/seed-0/checkpoint.pt"))
        first = execute(interrupt_when=started)
        errors = [m["content"] for m in first if m["msg_type"] == "error"]
        assert len(errors) == 1 and errors[0]["traceback"] == ["interrupted; run the cell again to resume"]
        assert errors[0]["ename"] == "Interrupted"
        second = execute()
        assert not [m for m in second if m["msg_type"] == "error"]
        assert len(list(out.glob("*/class-0/seed-0/metrics.json"))) == 2
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
