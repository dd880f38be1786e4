"""A synthetic class: submissions made from the student version with known answers, and the grade each
one must get. Used by the tests (every way a submission can go wrong) and by ``ood-explain classroom
timing`` (a class of N students × 4 exercises)."""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ood_explain.teaching.classroom.assignments import Assignment, cell_grade_id, cell_source, student_version

# Answers by function name: the solution, then typical wrong answers as (mistake id, body).
ANSWERS: dict[str, dict[str, str]] = {
    "similarity_matrix": {
        "correct": "z_hat = z / z.norm(dim=1, keepdim=True)\nreturn z_hat @ z_hat.T",
        "similarity_matrix.not-normalised": "return z @ z.T",
    },
    "nt_xent": {
        "correct": (
            "n = z.shape[0] // 2\nz_hat = F.normalize(z, dim=1)\nlogits = z_hat @ z_hat.T / temperature\n"
            "logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float('-inf'))\n"
            "return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))"
        ),
        "nt_xent.no-diagonal-mask": (
            "n = z.shape[0] // 2\nz_hat = F.normalize(z, dim=1)\nlogits = z_hat @ z_hat.T / temperature\n"
            "return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))"
        ),
        "nt_xent.no-temperature": (
            "n = z.shape[0] // 2\nz_hat = F.normalize(z, dim=1)\nlogits = z_hat @ z_hat.T\n"
            "logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float('-inf'))\n"
            "return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))"
        ),
    },
    "tangent_gradient": {
        "correct": (
            "norm = z.norm(dim=1, keepdim=True)\nz_hat = z / norm\n"
            "return (g - (g * z_hat).sum(dim=1, keepdim=True) * z_hat) / norm"
        ),
        "tangent_gradient.missing-inverse-norm": (
            "z_hat = z / z.norm(dim=1, keepdim=True)\nreturn g - (g * z_hat).sum(dim=1, keepdim=True) * z_hat"
        ),
    },
    "norm_after_step": {
        "correct": "return math.sqrt(norm ** 2 + (lr * grad_norm) ** 2)",
        "norm_after_step.lengths-added": "return norm + lr * grad_norm",
    },
    "oecl_loss": {
        "correct": "return losses.nt_xent(z_id, temperature) + alpha * z_oe.norm(dim=1).mean()",
        "oecl_loss.sum-not-mean": "return losses.nt_xent(z_id, temperature) + alpha * z_oe.norm(dim=1).sum()",
    },
    "auroc": {
        "correct": (
            "greater = (scores_id[:, None] > scores_ood[None, :]).mean()\n"
            "ties = (scores_id[:, None] == scores_ood[None, :]).mean()\nreturn float(greater + 0.5 * ties)"
        ),
        "auroc.ties-ignored": "return float((scores_id[:, None] > scores_ood[None, :]).mean())",
    },
    "rotation_split": {
        "correct": (
            "rotations = [torch.rot90(views, k, dims=(2, 3)) for k in range(4)]\n"
            "return torch.cat(rotations[:2]), torch.cat(rotations[2:])"
        ),
        "rotation_split.clockwise": (
            "rotations = [torch.rot90(views, -k, dims=(2, 3)) for k in range(4)]\n"
            "return torch.cat(rotations[:2]), torch.cat(rotations[2:])"
        ),
    },
    "leave_one_out_masks": {
        "correct": "return train_labels != held_out, test_labels != held_out, test_labels == held_out",
        "leave_one_out.integer-mask": (
            "return (train_labels != held_out).int(), (test_labels != held_out).int(), (test_labels == held_out).int()"
        ),
    },
}
HANGS = "while True:\n    pass"
HANGS_HARD = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
SLEEPS = "import time\ntime.sleep(1000)"
EXIT = "import os\nos._exit(3)"
SEGFAULT = "import ctypes\nctypes.string_at(0)"
MEMORY_BOMB = "hog = bytearray(1 << 42)"


@dataclass
class Expected:
    """The grade a synthetic submission must get: its status, and per task (function name) the status
    and mistake id; `tampering`: a phrase each tampering note list must contain."""

    status: str = "graded"
    tasks: dict[str, tuple[str, str]] = field(default_factory=dict)
    tampering: list[str] = field(default_factory=list)


@dataclass
class SyntheticSubmission:
    student: str
    assignment: str
    file_name: str
    data: bytes
    expected: Expected


def _fill(notebook: dict[str, Any], function: str, body: str, before: str = "") -> None:
    """Put `body` (and `before` the def) into the answer cell of `function`."""
    for cell in notebook["cells"]:
        if cell_grade_id(cell) and cell_grade_id(cell).endswith(f"-{function}-answer"):  # type: ignore[union-attr]
            lines = cell_source(cell).splitlines()
            indent = "    "
            new = [line for line in lines if line.strip() != "raise NotImplementedError"]
            new += [indent + line for line in body.splitlines()]
            cell["source"] = ((before + "\n") if before else "") + "\n".join(new)
            return
    raise KeyError(function)


def _check_cell_index(notebook: dict[str, Any], function: str) -> int:
    for i, cell in enumerate(notebook["cells"]):
        if cell_grade_id(cell) and cell_grade_id(cell).endswith(f"-{function}"):  # type: ignore[union-attr]
            return i
    raise KeyError(function)


def _code(source: str) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}


def _answered(assignment: Assignment, kinds: dict[str, str]) -> dict[str, Any]:
    """The student version with each task's function filled with ANSWERS[function][kind] ("todo": open)."""
    notebook = student_version(assignment)
    for task in assignment.tasks:
        kind = kinds.get(task.function, "correct")
        if kind != "todo":
            _fill(notebook, task.function, ANSWERS[task.function][kind])
    return notebook


def _bytes(notebook: dict[str, Any]) -> bytes:
    return json.dumps(notebook, indent=1, ensure_ascii=False).encode()


def _status_of(kind: str) -> tuple[str, str]:
    if kind == "correct":
        return "correct", ""
    if kind == "todo":
        return "unanswered", "todo-open"
    return "wrong", kind


def _expected(assignment: Assignment, kinds: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {t.function: _status_of(kinds.get(t.function, "correct")) for t in assignment.tasks}


def answer_submission(student: str, assignment: Assignment, kinds: dict[str, str]) -> SyntheticSubmission:
    notebook = _answered(assignment, kinds)
    return SyntheticSubmission(
        student, assignment.name, f"{student}_{assignment.name}.ipynb", _bytes(notebook),
        Expected(tasks=_expected(assignment, kinds)),
    )  # fmt: skip


def every_case(assignments: dict[str, Assignment]) -> list[SyntheticSubmission]:
    """One submission for every way a class can go (36 files): right, partly right, each task's typical
    wrong answers, unanswered, tampered check cells, runaway code, broken files, a wrong exercise."""
    a1, a2, a3, a4 = (assignments[name] for name in sorted(assignments)[:4])
    cases: list[SyntheticSubmission] = []
    n = 0

    def student() -> str:
        nonlocal n
        n += 1
        return f"s{n:02d}"

    for assignment in (a1, a2, a3, a4):
        cases.append(answer_submission(student(), assignment, {}))  # all right
        first, second = (t.function for t in assignment.tasks)
        cases.append(answer_submission(student(), assignment, {second: "todo"}))  # partly right
        cases.append(answer_submission(student(), assignment, {first: "todo", second: "todo"}))  # unanswered
        for task in assignment.tasks:  # each typical wrong answer
            for kind in ANSWERS[task.function]:
                if kind != "correct":
                    cases.append(answer_submission(student(), assignment, {task.function: kind}))

    first, second = (t.function for t in a1.tasks)
    wrong = next(k for k in ANSWERS[second] if k != "correct")

    def tampered(kinds: dict[str, str], edit, phrase: str) -> None:
        notebook = _answered(a1, kinds)
        edit(notebook)
        s = student()
        expected = Expected(tasks=_expected(a1, kinds), tampering=[phrase])
        cases.append(SyntheticSubmission(s, a1.name, f"{s}_{a1.name}.ipynb", _bytes(notebook), expected))

    index = _check_cell_index
    tampered({}, lambda nb: nb["cells"].pop(index(nb, second)), "deleted")
    tampered({}, lambda nb: nb["cells"].insert(index(nb, second), dict(nb["cells"][index(nb, second)])), "duplicated")
    tampered({second: wrong}, lambda nb: nb["cells"][index(nb, second)].update(source="ok = True"), "edited")
    tampered(
        {second: wrong}, lambda nb: nb["cells"].insert(index(nb, second) + 1, _code("ok = True")), "sets `ok = True`"
    )
    tampered(
        {second: wrong},
        lambda nb: nb["cells"].insert(index(nb, second), _code(f"def check_{second}(f):\n    return True")),
        "redefines the check function",
    )
    tampered(
        {second: wrong},
        lambda nb: nb["cells"].insert(
            index(nb, second),
            _code(f"import ood_explain.teaching.exercises as ex\nex.check_{second} = lambda f: True"),
        ),
        "patches",
    )

    def runaway(code: str, task_status: str, before_def: bool = True) -> None:
        notebook = _answered(a1, {})
        _fill(notebook, first, ANSWERS[first]["correct"], before=code)
        s = student()
        tasks = _expected(a1, {})
        tasks[first] = (task_status, "")
        cases.append(SyntheticSubmission(s, a1.name, f"{s}_{a1.name}.ipynb", _bytes(notebook), Expected(tasks=tasks)))

    runaway(HANGS, "timeout")
    runaway(HANGS_HARD, "timeout")
    runaway(EXIT, "crashed")
    runaway(SEGFAULT, "crashed")
    runaway(MEMORY_BOMB, "memory-limit")

    s = student()
    cases.append(SyntheticSubmission(s, a2.name, f"{s}_{a2.name}.ipynb", b'{"cells": [', Expected("invalid-notebook")))
    s = student()
    cases.append(SyntheticSubmission(s, a2.name, f"{s}_{a2.name}.ipynb", b"", Expected("empty")))
    s = student()
    other = _bytes(_answered(a1, {}))
    cases.append(SyntheticSubmission(s, a2.name, f"{s}_{a2.name}.ipynb", other, Expected("wrong-assignment")))
    s = student()
    cases.append(SyntheticSubmission(s, "", f"{s}_homework.ipynb", other, Expected("unknown-assignment")))
    return cases


def sleeping_case(assignment: Assignment, student: str = "sleeps") -> SyntheticSubmission:
    """A cell that sleeps longer than the notebook's time limit (set a cell limit above it)."""
    notebook = _answered(assignment, {})
    _fill(notebook, assignment.tasks[0].function, ANSWERS[assignment.tasks[0].function]["correct"], before=SLEEPS)
    name = f"{student}_{assignment.name}.ipynb"
    return SyntheticSubmission(student, assignment.name, name, _bytes(notebook), Expected("timeout"))


def write(submissions: list[SyntheticSubmission], folder: Path, zipped: int = 0) -> Path:
    """Write the files into `folder`; the last `zipped` of them go into ``folder/lms-download.zip``."""
    folder.mkdir(parents=True, exist_ok=True)
    loose, packed = submissions[: len(submissions) - zipped], submissions[len(submissions) - zipped :]
    for s in loose:
        (folder / s.file_name).write_bytes(s.data)
    if packed:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for s in packed:
                archive.writestr(s.file_name, s.data)
        (folder / "lms-download.zip").write_bytes(buffer.getvalue())
    return folder


def class_of(students: int, assignments: dict[str, Assignment], seed: int = 0) -> list[SyntheticSubmission]:
    """`students` × every exercise, answers drawn at random: 60 % right, 25 % a typical mistake, 15 % open."""
    rng = random.Random(seed)
    out = []
    for i in range(students):
        for assignment in assignments.values():
            kinds = {}
            for task in assignment.tasks:
                draw = rng.random()
                mistakes = [k for k in ANSWERS[task.function] if k != "correct"]
                kinds[task.function] = "correct" if draw < 0.6 else rng.choice(mistakes) if draw < 0.85 else "todo"
            out.append(answer_submission(f"student{i + 1:03d}", assignment, kinds))
    return out
