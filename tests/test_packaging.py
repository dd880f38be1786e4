"""environment.yml installs what pyproject.toml declares (runtime, notebooks and test extras), nothing less."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ ]", line.strip(), maxsplit=1)[0].lower() for line in lines}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = requirement_names(project["dependencies"] + extras["notebooks"] + extras["test"])
    pip_lines = [line.split("- ", 1)[1] for line in (REPO / "environment.yml").read_text().splitlines()
                 if line.startswith("      - ") and not line.strip().startswith("- -e")]
    assert requirement_names(pip_lines) == declared
