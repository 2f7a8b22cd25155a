"""The CLI builds only the command a run names; --help and unknown names still see every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voxmill.cli.main import COMMANDS, main, named_command


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["synth", "Hello."], "synth"),
        (["-q", "--debug", "check", "x"], "check"),
        (["--config", "synth", "info", "a.wav"], "info"),  # "synth" here is the settings file's name
        (["--", "voices"], "voices"),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_named_command_is_the_first_word_past_the_root_options(argv: list[str], name: str | None) -> None:
    assert named_command(argv) == name


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synthesise", "Hello."]) == 2
    assert "No such command 'synthesise'" in capsys.readouterr().err


def test_a_command_does_not_import_the_others() -> None:
    code = (
        "import sys; from voxmill.cli.main import main; code = main(['synth', '--help']);"
        "print(code, sorted(m for m in sys.modules if m.startswith('voxmill.cli.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("0 ") and "voxmill.cli.synth" in last, done.stdout
    assert "voxmill.cli.check" not in last and "voxmill.cli.serve" not in last, last
