"""Which package may import which (pyproject.toml's import contracts, README.md's Architecture section): the
contracts hold on this tree, each one fails naming itself when a forbidden import is added to a copy of the
tree, no import cycle passes even through a package's __init__, and no module is over 400 lines.

lint-imports runs as CI runs it (the program from the venv: tests/tools.py), on the tree or on a copy: it puts
the folder it runs in first on sys.path, so the copy's packages are the ones it reads (the editable install's
finder comes after the path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

from tests.tools import need

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("portal", "webhook")
MAX_LINES = 400


def lint_imports(root: Path, *contracts: str) -> tuple[int, str]:
    """(exit status, report) of lint-imports on the tree at `root`, limited to `contracts` when given."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["COLUMNS"] = "300"  # the report is wrapped at the terminal's width: keep each import chain on one line
    done = subprocess.run([str(need("lint-imports")), "--no-cache", "--no-logo",
                           *(f"--contract={contract}" for contract in contracts)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def contract(contract_id: str) -> dict:
    (found,) = [c for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
                if c["id"] == contract_id]
    return found


def test_the_import_contracts_hold():
    status, report = lint_imports(REPO)
    assert status == 0, report


# Each case adds imports to a copy of the tree: files written (or, with "+", appended to), the contract that
# must then fail, and what its report must say. Imports inside functions count: several cases hide theirs there.
FLASK = {"portal/core/added_for_test.py": "import flask\n"}
CLI_FROM_STORE = {"portal/store/added_for_test.py": "def later():\n    from portal.cli import main\n"}
NEW_PACKAGE = {"portal/autopay/__init__.py": '"""A new package nobody placed in the layers."""\n'}
HIDDEN_CYCLE = {"portal/core/added_a.py": "from portal.core import added_b\n",
                "portal/core/added_b.py": "def later():\n    from portal.core import added_a\n"}
CUSTOMER_TO_STAFF = {"webhook/customer/added_for_test.py": "def later():\n    import webhook.staff\n"}
PLUMBING_TO_VIEW = {"+webhook-plumbing": "\n\ndef _added_for_test():\n    import webhook.staff.auth\n"}
CASES = {
    "flask-in-portal": (FLASK, "portal-without-web", ["portal.core.added_for_test -> flask"]),
    "cli-from-store": (CLI_FROM_STORE, "portal-layers",
                       ["portal.store is not allowed to import portal.cli", "- portal.store.added_for_test -> "
                        "portal.cli"]),
    "unplaced-package": (NEW_PACKAGE, "portal-layers", ["not listed as layers", "- portal.autopay"]),
    "cycle-in-a-function": (HIDDEN_CYCLE, "no-cycles", ["No cycles are allowed in portal.core.", ".added_"]),
    "customer-to-staff": (CUSTOMER_TO_STAFF, "webhook-audiences",
                          ["webhook.customer is not allowed to import webhook.staff",
                           "- webhook.customer.added_for_test -> webhook.staff"]),
    "plumbing-to-view": (PLUMBING_TO_VIEW, "webhook-layers", ["is not allowed to import webhook.staff"]),
}


def copy_of_the_tree(root: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("case", CASES)
def test_an_added_forbidden_import_breaks_its_contract(tmp_path, case):
    files, contract_id, expected = CASES[case]
    root = copy_of_the_tree(tmp_path)
    for name, code in files.items():
        if name == "+webhook-plumbing":  # the plumbing's first module, whatever the contract names it
            lowest = contract("webhook-layers")["layers"][-1]
            name = "+webhook/" + lowest.split(":")[0].strip() + ".py"
        path = root / name.lstrip("+")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((path.read_text() if name.startswith("+") else "") + code)
    status, report = lint_imports(root, contract_id)
    assert status == 1, report
    assert f"{contract(contract_id)['name']} BROKEN" in report, report
    for text in expected:
        assert text in report, f"{text!r} missing from:\n{report}"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each group of modules that import one another in a circle (directly or through a chain): its modules,
    then every import between two of them, with its line: the imports among which to cut.

    The no-cycles contract compares siblings (packages of one parent, modules of one package), so it cannot see
    a cycle through a package's own __init__ (`webhook` -> `webhook.customer.links` -> `webhook`); this can.
    """
    groups: set[frozenset[str]] = set()
    for module in graph.modules:
        around = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if around:
            groups.add(frozenset({module, *around}))
    found = []
    for group in sorted(groups, key=sorted):
        imports = [f"{importer} -> {imported} (l.{', l.'.join(str(d['line_number']) for d in details)})"
                   for importer in sorted(group)
                   for imported in sorted(graph.find_modules_directly_imported_by(importer) & group)
                   if (details := graph.get_import_details(importer=importer, imported=imported))]
        found.append(sorted(group) + [f"  {line}" for line in imports])
    return found


def test_no_import_cycle_even_through_a_package_init():
    cycles = import_cycles(grimp.build_graph(*PACKAGES, cache_dir=None))
    assert not cycles, f"{len(cycles)} groups of modules import one another in a circle (imports inside functions " \
        "count):\n" + "\n\n".join("\n".join(group) for group in cycles)


def test_a_view_importing_the_app_factory_is_a_cycle():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    # A customer view the app factory imports (form tokens, once reached only through the views, are plumbing now).
    view = next(m for m in sorted(graph.find_descendants("webhook.customer"))
                if graph.chain_exists(importer="webhook", imported=m))
    assert not [group for group in import_cycles(graph) if "webhook" in group]
    graph.add_import(importer=view, imported="webhook", line_number=1,
                     line_contents="from webhook import DEFAULTS")  # what the view would record
    (group,) = [group for group in import_cycles(graph) if "webhook" in group]
    assert view in group and f"  {view} -> webhook (l.1)" in group, group


def test_no_module_is_over_400_lines():
    over = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES:
                over[str(path.relative_to(REPO))] = lines
    assert not over, f"{len(over)} modules over {MAX_LINES} lines (split by what they hold):\n" + "\n".join(
        f"  {path}: {lines} lines" for path, lines in sorted(over.items(), key=lambda item: -item[1]))


def test_every_test_module_is_collected():
    """Tests mirror the packages, so a test folder is named like one (tests/build/): pytest's default
    `norecursedirs` skips folders named build, dist or venv, and their tests would pass by never running."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    collected = {line.split("::", 1)[0] for line in done.stdout.splitlines() if "::" in line}
    on_disk = {str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")}
    assert on_disk - collected == set(), done.stdout[-2000:] + done.stderr[-2000:]
