"""The README opens with the two commands a new user runs, and CI runs the second."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_readme_opens_with_run_and_test_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```sh")
    assert text[:first_block].count("\n") < 6, "the commands come first"
    run, test = _blocks()[:2]
    assert "\n" not in run and "\n" not in test
    assert run.endswith("bems demo")
    assert "pytest" in test
    for cmd in (run, test):
        assert cmd.startswith("apt-get update && apt-get install -y python3-venv")


def test_ci_runs_exactly_the_readme_test_command():
    out = subprocess.run(["awk", r'/^```sh$/{n++; next} /^```$/{next} n==2 && !done {print; '
                          r'done=1}', str(ROOT / "README.md")], capture_output=True, text=True)
    assert out.stdout.strip() == _blocks()[1]
    assert "README.md" in (ROOT / ".ci" / "run").read_text()
