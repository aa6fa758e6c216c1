"""The README's quick start stays true: two commands, the second one is what CI runs."""

import re

from conftest import ROOT


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_is_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "callflow run flows/" in commands[0]
    assert "pytest" in commands[1]
    flow = commands[0].split("callflow run ", 1)[1].split()[0]
    assert (ROOT / flow).is_file()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start_commands()[1] in ci.splitlines()
