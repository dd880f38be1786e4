"""The teacher's side: assignments and nbgrader metadata, the student release, finding submissions in every
layout, tampering, the gradebook and report; then (slow) a synthetic class graded end to end, the
sandbox, and a round trip through the real nbgrader."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from ood_explain.teaching.classroom import assignments as A
from ood_explain.teaching.classroom import gradebook, grading, synthetic
from ood_explain.teaching.classroom.grading import Result, TaskResult
from ood_explain.tools import cli

REPO = Path(__file__).resolve().parents[1]
EXERCISES = REPO / "notebooks" / "exercises"


@pytest.fixture(scope="module")
def assignments():
    return A.load_assignments()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------ assignments and release


def test_every_cell_has_nbgrader_metadata(assignments):
    assert [a.name for a in assignments.values()] == [
        "ex01_nt_xent",
        "ex02_norm_growth",
        "ex03_oecl_and_auroc",
        "ex04_rotations_and_loo",
    ]
    for assignment in assignments.values():
        cells = A.read_notebook(assignment.solution)["cells"]
        ids = [A.cell_grade_id(c) for c in cells]
        assert None not in ids and len(set(ids)) == len(ids), assignment.name
        for cell in cells:
            meta = cell["metadata"]["nbgrader"]
            assert meta["schema_version"] == 3
            assert meta["locked"] is not meta["solution"]  # answers editable, everything else locked
            if meta["grade"]:
                assert meta["points"] > 0 and A.check_call(A.cell_source(cell))
        assert len(assignment.tasks) == 2 and assignment.points >= 2


def test_release_is_what_is_committed(tmp_path):
    """The student notebooks are generated from the solutions: the two cannot drift."""
    paths = A.release(tmp_path)
    assert sorted(p.name for p in paths) == sorted([p.name for p in EXERCISES.glob("*.ipynb")] + ["SUBMIT.md"])
    for path in paths:
        assert path.read_text() == (EXERCISES / path.name).read_text(), (
            f"run: ood-explain classroom release --out {EXERCISES}"
        )


def test_student_version_has_no_answers(assignments):
    for assignment in assignments.values():
        notebook = A.student_version(assignment)
        text = json.dumps(notebook)
        assert A.BEGIN not in text and "(solutions)" not in text and "../../" not in text
        for task in assignment.tasks:
            cell = next(c for c in notebook["cells"] if A.cell_grade_id(c) == task.answer_id)
            source = A.cell_source(cell)
            assert source.startswith(f"def {task.function}(") and "# TODO" in source
            assert source.rstrip().endswith("raise NotImplementedError")
        assert all(c.get("outputs", []) == [] for c in notebook["cells"] if c["cell_type"] == "code")


def test_unbalanced_solution_markers_are_refused():
    with pytest.raises(A.AssignmentError, match="without"):
        A.strip_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(A.AssignmentError, match="without"):
        A.strip_solution("def f():\n    return 1\n    ### END SOLUTION\n")
    assert A.strip_solution("def f():\n    # TODO\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION") == (
        "def f():\n    # TODO\n    raise NotImplementedError"
    )


def test_release_cli_and_unknown_exercise(tmp_path, capsys):
    assert cli.main(["classroom", "release", "ex03", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SUBMIT.md", "ex03_oecl_and_auroc.ipynb"]
    assert "ex03_oecl_and_auroc.ipynb`: 3 points" in (tmp_path / "SUBMIT.md").read_text()
    assert cli.main(["classroom", "release", "ex09", "--out", str(tmp_path)]) == 2
    assert "unknown exercise 'ex09': choose from ex01_nt_xent" in capsys.readouterr().err
    assert cli.main(["classroom", "release", "--out", str(tmp_path), "--source", str(tmp_path)]) == 2
    assert "no solution notebooks" in capsys.readouterr().err


# ------------------------------------------------------------------------------ finding submissions

NAMES = ["ex01_nt_xent", "ex02_norm_growth"]


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("alice_ex01_nt_xent.ipynb", ("alice", "ex01_nt_xent")),
        ("submitted/bob/ex02_norm_growth/ex02_norm_growth.ipynb", ("bob", "ex02_norm_growth")),
        ("carol/ex01_nt_xent.ipynb", ("carol", "ex01_nt_xent")),
        ("ex01_nt_xent/dave.ipynb", ("dave", "ex01_nt_xent")),
        ("smithjane_LATE_1234_5678_ex01_nt_xent-1.ipynb", ("smithjane_1234", "ex01_nt_xent")),  # Canvas
        ("Jane Doe_77_assignsubmission_file_/ex02_norm_growth.ipynb", ("Jane Doe_77", "ex02_norm_growth")),  # Moodle
        ("bob_homework.ipynb", ("bob_homework", None)),
    ],
)
def test_layouts_name_student_and_exercise(relative, expected):
    assert grading._identify(Path(relative), NAMES) == expected


def test_collect_reads_folders_zips_and_skips_checkpoints(tmp_path, assignments):
    nb = (EXERCISES / "ex01_nt_xent.ipynb").read_bytes()
    (tmp_path / "submitted" / "bob" / "ex01_nt_xent").mkdir(parents=True)
    (tmp_path / "submitted" / "bob" / "ex01_nt_xent" / "ex01_nt_xent.ipynb").write_bytes(nb)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x_ex01_nt_xent-checkpoint.ipynb").write_bytes(nb)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("alice_ex02_norm_growth.ipynb", b"{}")
    (tmp_path / "download.zip").write_bytes(buffer.getvalue())
    found = sorted((s.student, s.assignment, s.file) for s in grading.collect(tmp_path, assignments))
    assert found == [
        ("alice", "ex02_norm_growth", "download.zip/alice_ex02_norm_growth.ipynb"),
        ("bob", "ex01_nt_xent", "submitted/bob/ex01_nt_xent/ex01_nt_xent.ipynb"),
    ]
    assert [s.student for s in grading.collect(tmp_path / "download.zip", assignments)] == ["alice"]
    with pytest.raises(FileNotFoundError, match="no submissions at"):
        grading.collect(tmp_path / "nowhere", assignments)


def test_a_zip_that_escapes_its_folder_is_refused(tmp_path, assignments):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../../escaped_ex01_nt_xent.ipynb", b"{}")
    with pytest.raises(ValueError, match="outside the archive"):
        grading.collect(tmp_path / "evil.zip", assignments)


def test_newest_file_wins_and_older_are_duplicates():
    old = grading.Submission("ann", "ex01_nt_xent", "a.ipynb", b"1", mtime=1.0)
    new = grading.Submission("ann", "ex01_nt_xent", "b.ipynb", b"2", mtime=2.0)
    keep, older = grading.latest_only([new, old])
    assert keep == [new] and older == [old]


# ------------------------------------------------------------------------------ reading a notebook


def test_parse_statuses():
    assert grading.parse(b"") == "empty"
    assert grading.parse(b"  \n") == "empty"
    assert grading.parse(b'{"cells": [') == "invalid-notebook"
    assert grading.parse(b"\xff\xfe") == "invalid-notebook"
    assert grading.parse(b'{"cells": 3}') == "invalid-notebook"
    assert grading.parse(b'{"cells": [{"cell_type": "code", "source": "x"}]}') == [{"cell_type": "code", "source": "x"}]


def test_wrong_exercise_is_recognised(assignments):
    cells = A.student_version(assignments["ex01_nt_xent"])["cells"]
    assert grading.which_assignment(cells, assignments) == "ex01_nt_xent"
    bare = [{"cell_type": "code", "source": "def auroc(a, b):\n    return 0.5"}]  # no metadata: by the functions
    assert grading.which_assignment(bare, assignments) == "ex03_oecl_and_auroc"


def test_every_kind_of_tampering_is_named(assignments):
    cases = {c.student: c for c in synthetic.every_case(assignments)}
    flagged = {s: c for s, c in cases.items() if c.expected.tampering}
    assert len(flagged) == 6
    for case in flagged.values():
        cells = grading.parse(case.data)
        notes = grading.tampering(cells, assignments[case.assignment])
        assert any(case.expected.tampering[0] in note for note in notes), (case.expected.tampering, notes)
    clean = next(c for c in cases.values() if c.expected.status == "graded" and not c.expected.tampering)
    assert grading.tampering(grading.parse(clean.data), assignments[clean.assignment]) == []


# ------------------------------------------------------------------------------ gradebook and report


def _result(student, assignment, statuses, mistakes=("", ""), status="graded"):
    tasks = [
        TaskResult(
            f"{assignment}-t{i}",
            f"f{i}",
            1.0 if s == "correct" else 0.0,
            1.0,
            s,
            m,
            f"❌ not yet: f{i}: hint {m}" if s == "wrong" else "",
        )
        for i, (s, m) in enumerate(zip(statuses, mistakes))
    ]
    return Result(student, assignment, f"{student}.ipynb", "0" * 64, status, "", tasks)


def test_common_mistakes_count_students_per_hint():
    results = [
        _result(f"s{i}", "ex03_oecl_and_auroc", ("wrong", "correct"), ("oecl_loss.sum-not-mean", "")) for i in range(14)
    ]
    results += [_result(f"t{i}", "ex03_oecl_and_auroc", ("correct", "correct")) for i in range(16)]
    top = gradebook.common_mistakes(results)
    assert top == [("ex03_oecl_and_auroc", "ex03_oecl_and_auroc-t0", 14, 30, "hint oecl_loss.sum-not-mean")]


def test_gradebook_is_one_row_per_student(tmp_path, assignments):
    results = [
        _result("ann", "ex01_nt_xent", ("correct", "wrong")),
        _result("bob", "ex01_nt_xent", ("correct", "correct")),
    ]
    book = _rows(gradebook.write_gradebook(results, assignments, tmp_path))
    assert [r["student_id"] for r in book] == ["ann", "bob"]
    assert (book[0]["ex01_nt_xent"], book[0]["total"], book[1]["total"], book[0]["max_score"]) == ("1", "1", "2", "11")
    grades = _rows(gradebook.write_grades(results, tmp_path))
    assert list(grades[0]) == gradebook.GRADES_COLUMNS and len(grades) == 4


# ------------------------------------------------------------------------------ the class, end to end


@pytest.mark.slow
def test_synthetic_class_is_graded_row_by_row(tmp_path, assignments):
    cases = synthetic.every_case(assignments)
    assert len(cases) == 36
    submissions = tmp_path / "submissions"
    synthetic.write(cases, submissions, zipped=4)
    out = tmp_path / "grades"
    (out / "feedback").mkdir(parents=True)
    snoop = synthetic.answer_submission("snoop", assignments["ex04_rotations_and_loo"], {})
    snoop_source = (
        "for _path in [{!r}, {!r}]:\n"
        "    try:\n"
        "        open(_path, 'w').write('pwned')\n"
        "    except OSError as _error:\n"
        "        print('refused', _error)\n"
        "try:\n"
        "    open({!r}).read()\n"
        "except OSError as _error:\n"
        "    print('refused', _error)\n"
    ).format(
        str(out / "pwned.csv"),
        str(submissions / "s01_ex01_nt_xent.ipynb"),
        str(A.default_source() / "ex01_nt_xent_solution.ipynb"),
    )
    notebook = json.loads(snoop.data)
    notebook["cells"].insert(2, synthetic._code(snoop_source))
    (submissions / snoop.file_name).write_bytes(json.dumps(notebook).encode())
    before = (submissions / "s01_ex01_nt_xent.ipynb").read_bytes()

    args = ["classroom", "grade", str(submissions), "--out", str(out), "--jobs", "2", "--cell-timeout", "8",
            "--notebook-timeout", "150"]  # fmt: skip
    assert cli.main(args) == 0
    assert not (out / "pwned.csv").exists() and (submissions / "s01_ex01_nt_xent.ipynb").read_bytes() == before

    rows = _rows(out / "grades.csv")
    by_key: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        by_key.setdefault((row["student_id"], row["assignment"]), []).append(row)
    submissions_csv = {(r["student_id"], r["assignment"]): r for r in _rows(out / "submissions.csv")}
    book = {r["student_id"]: r for r in _rows(out / "gradebook.csv")}
    for case in cases:
        key = (case.student, case.assignment)
        if case.expected.status == "unknown-assignment":
            assert submissions_csv[(Path(case.file_name).stem, "")]["status"] == "unknown-assignment"
            assert Path(case.file_name).stem not in book  # an unrecognised file makes no student
            continue
        sent = submissions_csv[key]
        assert sent["status"] == case.expected.status, (key, sent)
        for phrase in case.expected.tampering:
            assert phrase in sent["tampering"], (key, sent["tampering"])
        if case.expected.status != "graded":
            assert all(r["status"] == "not-graded" and r["score"] == "0" for r in by_key[key])
            continue
        got = {
            r["task"].split("-", 1)[1]: (r["status"], r["mistake"] if r["status"] == "wrong" else "")
            for r in by_key[key]
        }
        want = {f: (s, m if s == "wrong" else "") for f, (s, m) in case.expected.tasks.items()}
        assert got == want, (key, got, want)
        for r in by_key[key]:
            task = next(t for t in assignments[case.assignment].tasks if t.grade_id == r["task"])
            assert (
                float(r["score"]) == (task.points if r["status"] == "correct" else 0)
                and float(r["max_score"]) == task.points
            )
    assert all(r["status"] == "correct" for r in by_key[("snoop", "ex04_rotations_and_loo")])

    assert book["s01"]["ex01_nt_xent"] == "3" and book["s01"]["ex02_norm_growth"] == "0"
    assert book["s02"]["ex01_nt_xent"] == "1"  # partly right: the 1-point task
    feedback = (out / "feedback" / "s01" / "ex01_nt_xent.html").read_text()
    assert feedback.count("<td class=ok>✅ correct") == 2 and "3 / 3" in feedback
    report = (out / "report.html").read_text()
    assert "The most common mistakes" in report and " of " in report and "Check cells or checks tampered with" in report

    first = {p: p.read_bytes() for p in (out / "grades.csv", out / "gradebook.csv", out / "submissions.csv")}
    assert cli.main(args) == 0  # nothing changed: every file from the cache, the same gradebook
    assert {p: p.read_bytes() for p in first} == first


@pytest.mark.slow
def test_a_notebook_over_its_time_limit_is_stopped_and_the_rest_graded(tmp_path, assignments):
    cases = [synthetic.sleeping_case(assignments["ex02_norm_growth"])]
    cases.append(synthetic.answer_submission("fine", assignments["ex02_norm_growth"], {}))
    synthetic.write(cases, tmp_path / "submissions")
    from ood_explain.tools.classroom_cli import grade_folder

    options = grading.Options(cell_timeout=600, notebook_timeout=25)
    before = set(Path(tempfile.gettempdir()).glob("ood-explain-grade-*"))
    results = grade_folder(tmp_path / "submissions", tmp_path / "grades", options, 2, None, False)
    sent = {r.student: r for r in results if r.assignment == "ex02_norm_growth"}
    assert sent["sleeps"].status == "timeout" and "longer than 25 s" in sent["sleeps"].message
    assert sent["fine"].status == "graded" and sent["fine"].score == 3
    assert set(Path(tempfile.gettempdir()).glob("ood-explain-grade-*")) <= before  # its folder is gone


@pytest.mark.slow
def test_sandbox_limits_and_file_rules(tmp_path):
    code = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, %r)\n"
        "import sandbox\n"
        "work = Path(%r)\n"
        "note = sandbox.confine(work, sandbox.Limits(memory_bytes=1 << 30), [Path(%r)])\n"
        "out = {'note': note}\n"
        "for name, path in [('work', work / 'a'), ('outside', Path(%r) / 'b')]:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); out[name] = 'written'\n"
        "    except OSError: out[name] = 'refused'\n"
        "try:\n"
        "    open(Path(%r) / 'secret').read(); out['read'] = 'read'\n"
        "except OSError: out['read'] = 'refused'\n"
        "try:\n"
        "    bytearray(2 << 30); out['memory'] = 'allocated'\n"
        "except MemoryError: out['memory'] = 'MemoryError'\n"
        "print(json.dumps(out))\n"
    )
    work, secret = tmp_path / "work", tmp_path / "secret"
    work.mkdir(), secret.mkdir()
    (secret / "secret").write_text("s")
    folder = Path(grading.__file__).parent
    source = code % (str(folder), str(work), str(secret), str(tmp_path), str(secret))
    result = json.loads(
        subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True).stdout
    )
    assert result["memory"] == "MemoryError"
    if "no file rules" in result["note"]:
        pytest.skip("this kernel has no Landlock (the limits were checked)")
    assert (result["work"], result["outside"], result["read"]) == ("written", "refused", "refused")


@pytest.mark.slow
def test_nbgrader_gives_the_same_points(tmp_path, assignments):
    """The real nbgrader (generate_assignment, autograde) on our notebooks agrees with our grader."""
    pytest.importorskip("nbgrader", reason="nbgrader is in the test extra: pip install -e '.[test]'")
    from nbgrader.api import Gradebook

    assignment = assignments["ex03_oecl_and_auroc"]
    first, second = (t.function for t in assignment.tasks)
    wrong = next(k for k in synthetic.ANSWERS[second] if k != "correct")
    cases = [
        synthetic.answer_submission("right", assignment, {}),
        synthetic.answer_submission("half", assignment, {second: wrong}),
        synthetic.answer_submission("open", assignment, {first: "todo", second: "todo"}),
        synthetic.answer_submission("other", assignment, {first: "oecl_loss.sum-not-mean"}),
    ]
    from ood_explain.tools.classroom_cli import grade_folder, nbgrader_autograde

    course = tmp_path / "course"
    nbgrader_autograde(course, cases)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as book:
        theirs = {c.student: book.find_submission(assignment.name, c.student).score for c in cases}
    folder = tmp_path / "flat"
    synthetic.write(cases, folder)
    results = grade_folder(folder, tmp_path / "grades", grading.Options(), 2, None, False)
    ours = {r.student: r.score for r in results if r.assignment == assignment.name}
    assert theirs == ours == {"right": 3.0, "half": 1.0, "open": 0.0, "other": 2.0}


def test_the_cache_is_keyed_by_the_grader_the_assignments_and_the_limits(assignments, tmp_path, monkeypatch):
    base = grading.fingerprint(assignments, grading.Options())
    assert grading.fingerprint(assignments, grading.Options()) == base
    assert grading.fingerprint(assignments, grading.Options(cell_timeout=5)) != base
    copy = tmp_path / "classroom"
    shutil.copytree(Path(grading.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(grading.__file__).parents[1] / "exercises.py", tmp_path / "exercises.py")
    monkeypatch.setattr(grading, "__file__", str(copy / "grading.py"))
    assert grading.fingerprint(assignments, grading.Options()) == base  # the same code, elsewhere
    (copy / "worker.py").write_text((copy / "worker.py").read_text() + "\n# changed\n")
    assert grading.fingerprint(assignments, grading.Options()) != base  # the grader changed: regrade
