"""What a teacher reads after grading: ``grades.csv`` (student × exercise × task), ``gradebook.csv`` (one
row per student, nbgrader's export style), ``submissions.csv`` (status, tampering, notes per file), a
feedback page per submission and the class report (``report.html``: score distribution per task and the
class's most common mistakes)."""

from __future__ import annotations

import csv
import html
import re
from collections import Counter, defaultdict
from pathlib import Path

from ood_explain.teaching.classroom.assignments import Assignment
from ood_explain.teaching.classroom.grading import TASK_STATUSES, Result

GRADES_COLUMNS = ["student_id", "assignment", "task", "score", "max_score", "status", "mistake", "message"]
SUBMISSION_COLUMNS = [
    "student_id",
    "assignment",
    "file",
    "sha256",
    "status",
    "score",
    "max_score",
    "tampering",
    "notes",
]
STATUS_COLORS = {
    "correct": "#2ca02c",
    "wrong": "#d62728",
    "unanswered": "#bbbbbb",
    "missing": "#8c564b",
    "timeout": "#ff7f0e",
    "memory-limit": "#e377c2",
    "crashed": "#9467bd",
    "not-graded": "#444444",
}


def _graded(results: list[Result]) -> list[Result]:
    """One result per student and exercise (older duplicates left out)."""
    return [r for r in results if r.status != "duplicate" and r.assignment]


def _write_csv(path: Path, columns: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _points(value: float) -> str:
    return f"{value:g}"


def write_grades(results: list[Result], out: Path) -> Path:
    rows: list[list[object]] = [
        [r.student, r.assignment, t.task, _points(t.score), _points(t.max_score), t.status, t.mistake, t.message]
        for r in _graded(results)
        for t in r.tasks
    ]
    return _write_csv(out / "grades.csv", GRADES_COLUMNS, rows)


def write_submissions(results: list[Result], out: Path) -> Path:
    rows: list[list[object]] = [
        [
            r.student,
            r.assignment,
            r.file,
            r.sha256,
            r.status,
            _points(r.score),
            _points(r.max_score),
            " | ".join(r.tampering),
            " | ".join([r.message, *r.notes] if r.message else r.notes),
        ]
        for r in results
        if r.file
    ]
    return _write_csv(out / "submissions.csv", SUBMISSION_COLUMNS, rows)


def write_gradebook(results: list[Result], assignments: dict[str, Assignment], out: Path) -> Path:
    """One row per student: the score of each exercise, the total and the maximum."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for r in _graded(results):
        scores[r.student][r.assignment] = r.score
    names = list(assignments)
    top = sum(a.points for a in assignments.values())
    rows: list[list[object]] = []
    for student in sorted(scores):
        row = [scores[student].get(name, 0.0) for name in names]
        rows.append([student, *map(_points, row), _points(sum(row)), _points(top)])
    return _write_csv(out / "gradebook.csv", ["student_id", *names, "total", "max_score"], rows)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "student"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.4 }}
table {{ border-collapse: collapse }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left;
vertical-align: top }} .ok {{ color: #2ca02c }} .no {{ color: #d62728 }} code {{ background: #f3f3f3 }}
</style></head><body>{body}</body></html>"""


def feedback_page(result: Result) -> str:
    """The student's page: each task with ✅/❌ and the check's message."""
    rows = "".join(
        f"<tr><td>{html.escape(t.function)}</td><td class={'ok' if t.score else 'no'}>"
        f"{'✅' if t.status == 'correct' else '❌'} {html.escape(t.status)}</td>"
        f"<td>{_points(t.score)} / {_points(t.max_score)}</td><td>{html.escape(t.message)}</td></tr>"
        for t in result.tasks
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in ([result.message] if result.message else []) + result.notes)
    body = (
        f"<h1>{html.escape(result.assignment)}: {html.escape(result.student)}</h1>"
        f"<p>Score: <b>{_points(result.score)} / {_points(result.max_score)}</b> · status: {html.escape(result.status)}"
        f" · file <code>{html.escape(result.file)}</code></p>"
        f"<table><tr><th>task</th><th>result</th><th>points</th><th>what the check said</th></tr>{rows}</table>"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
    )
    return PAGE.format(title=html.escape(f"{result.assignment} · {result.student}"), body=body)


def write_feedback(results: list[Result], out: Path) -> list[Path]:
    paths = []
    for r in _graded(results):
        if r.status == "not-submitted":
            continue
        path = out / "feedback" / _slug(r.student) / f"{r.assignment}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(feedback_page(r), encoding="utf-8")
        paths.append(path)
    return paths


def common_mistakes(results: list[Result]) -> list[tuple[str, str, int, int, str]]:
    """(assignment, task, how many, of how many, the hint) for every "not yet" shared by students, most
    common first. Answers the checks recognised are grouped by mistake id; others by their message."""
    counts: Counter[tuple[str, str, str]] = Counter()
    hint: dict[tuple[str, str, str], str] = {}
    submitted: Counter[tuple[str, str]] = Counter()
    for r in _graded(results):
        if r.status in ("not-submitted", "wrong-assignment", "unknown-assignment"):
            continue
        for t in r.tasks:
            submitted[(r.assignment, t.task)] += 1
            if t.status in ("wrong", "timeout", "memory-limit", "crashed", "missing"):  # not the open TODOs
                key = (r.assignment, t.task, t.mistake or t.status)
                counts[key] += 1
                hint.setdefault(key, _hint(t.message, t.status))
    return [
        (assignment, task, n, submitted[(assignment, task)], hint[(assignment, task, mistake)])
        for (assignment, task, mistake), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _hint(message: str, status: str) -> str:
    """The check's message without its "❌ not yet: name:" prefix."""
    text = re.sub(r"^❌ not yet: [\w.]+: ", "", message)
    return text or TASK_STATUSES.get(status, status)


def class_report(results: list[Result], assignments: dict[str, Assignment]) -> str:
    """report.html: per task, how many students got each status (stacked bars); the totals per exercise;
    the most common mistakes, as "14 of 30: hint"."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    graded = _graded(results)
    tasks = [(a.name, t.grade_id) for a in assignments.values() for t in a.tasks]
    labels = [task for _, task in tasks]
    figure = make_subplots(
        rows=2, cols=1, subplot_titles=("Each task: how many students got each result", "Score per exercise")
    )
    for status, color in STATUS_COLORS.items():
        counts = [
            sum(1 for r in graded if r.assignment == a for t in r.tasks if t.task == task and t.status == status)
            for a, task in tasks
        ]
        if any(counts):
            figure.add_bar(x=labels, y=counts, name=status, marker_color=color, row=1, col=1)
    for assignment in assignments.values():
        scores = [r.score for r in graded if r.assignment == assignment.name]
        figure.add_trace(
            go.Box(y=scores, name=assignment.name, boxpoints="all", jitter=0.4, showlegend=False), row=2, col=1
        )
    figure.update_layout(barmode="stack", height=800, legend_title_text="result")
    figure.update_yaxes(title_text="students", row=1, col=1)
    figure.update_yaxes(title_text="points", row=2, col=1)
    mistakes = common_mistakes(results)
    rows = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(task)}</td><td><b>{n} of {of}</b></td>"
        f"<td>{html.escape(text)}</td></tr>"
        for a, task, n, of, text in mistakes
        if n >= 1
    )
    flagged = [r for r in results if r.tampering]
    tamper_rows = "".join(
        f"<tr><td>{html.escape(r.student)}</td><td>{html.escape(r.assignment)}</td>"
        f"<td>{'<br>'.join(html.escape(t) for t in r.tampering)}</td></tr>"
        for r in flagged
    )
    statuses = Counter(r.status for r in results)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    body = (
        f"<h1>Class report</h1><p>{len({r.student for r in results})} students, {summary}.</p>"
        + figure.to_html(full_html=False, include_plotlyjs=True)
        + "<h2>The most common mistakes</h2><p>Each row: how many of the students who sent the exercise gave "
        "this answer, and the hint their check printed.</p>"
        "<table><tr><th>exercise</th><th>task</th><th>students</th><th>hint</th></tr>"
        + rows
        + "</table>"
        + (
            "<h2>Check cells or checks tampered with</h2><p>The grade never depends on them (grading runs its own "
            "checks); look at these notebooks.</p><table><tr><th>student</th><th>exercise</th><th>what</th></tr>"
            + tamper_rows
            + "</table>"
            if flagged
            else ""
        )
    )
    return PAGE.format(title="Class report", body=body)


def write_all(results: list[Result], assignments: dict[str, Assignment], out: Path) -> dict[str, Path]:
    """Every file above into `out`; returns them by name."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.html"
    report.write_text(class_report(results, assignments), encoding="utf-8")
    write_feedback(results, out)
    return {
        "grades": write_grades(results, out),
        "gradebook": write_gradebook(results, assignments, out),
        "submissions": write_submissions(results, out),
        "report": report,
        "feedback": out / "feedback",
    }
