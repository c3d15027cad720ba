"""`istiolite analyze -f` and `kube-inject -f` answer a file they cannot use with one line
naming the file and the cause, and a non-zero exit: never a traceback, a hang or unbounded memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from istiolite.cli import main
from tests.hostile import HOSTILE, KINDS, made

# Named on the command line, a FIFO is read like `-f <(helm template ...)`: it waits for its
# writer, as `cat` would. In a directory it is refused with the other special files.
NAMED = sorted(set(HOSTILE) - {"fifo.yaml"})


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _one_clear_error(result: Result, path: Path, says: str) -> None:
    assert result.exit_code != 0, result.output
    # CliRunner turns an uncaught exception into exit code 1 too: it must have been SystemExit.
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if str(path) in line]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(("Error: ", "Error [")), lines[0]
    assert says in lines[0], lines[0]


def _says_named(name: str) -> str:
    # Named on the command line, a device is read like a pipe, and /dev/zero never ends.
    return "32 MiB" if name in ("device.yaml", "dev-zero.yaml") else HOSTILE[name].says


@pytest.mark.parametrize("name", NAMED)
def test_analyze_names_the_file_it_cannot_use_and_why(tmp_path: Path, name: str) -> None:
    files = made(tmp_path, [name])
    if not files:
        pytest.skip(f"cannot make {name} here")
    _one_clear_error(_run("analyze", "-f", str(files[name])), files[name], _says_named(name))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_analyze_of_a_directory_names_the_file_it_cannot_use(tmp_path: Path, name: str) -> None:
    files = made(tmp_path, [name])
    if not files:
        pytest.skip(f"cannot make {name} here")
    _one_clear_error(_run("analyze", "-f", str(tmp_path)), files[name], HOSTILE[name].says)


@pytest.mark.parametrize("name", sorted(set(NAMED) - KINDS))  # other kinds pass through
def test_kube_inject_names_the_file_it_cannot_use_and_why(tmp_path: Path, name: str) -> None:
    files = made(tmp_path, [name])
    if not files:
        pytest.skip(f"cannot make {name} here")
    _one_clear_error(_run("kube-inject", "-f", str(files[name])), files[name], _says_named(name))


def test_kube_inject_of_a_directory_says_so(tmp_path: Path) -> None:
    result = _run("kube-inject", "-f", str(tmp_path))
    _one_clear_error(result, tmp_path, "it is a directory")


def test_standard_input_that_is_not_utf8_is_one_clear_error() -> None:
    for command in ("analyze", "kube-inject"):
        result = CliRunner().invoke(main, [command, "-f", "-"], input=b"a: caf\xe9\n")
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
        assert "Error: <stdin>: not UTF-8 text: byte 0xe9 at offset 6" in result.output
