"""The store's schema is the store's alone (portal/store/registry.py): every table is defined in portal/store/, and
loading every module of the store loads no package above it (README.md, Architecture)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import portal

PORTAL = Path(portal.__file__).parent


def test_every_table_is_defined_in_the_store():
    """A `Table(name, metadata, ...)` on the store's metadata anywhere else would escape the registry's view of
    the schema, or pull the package that defines it into the store."""
    outside = []
    for path in sorted(PORTAL.rglob("*.py")):
        if path.is_relative_to(PORTAL / "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Table" \
                    and len(node.args) > 1 and getattr(node.args[1], "id", "") == "metadata":
                outside.append(f"{path.relative_to(PORTAL.parent)}:{node.lineno}")
    assert outside == []


def test_the_store_loads_no_package_above_it():
    """Every module of portal/store, with its function-level imports run too (Store.migrate's Alembic), loads only
    portal.store, portal.export and portal.core."""
    modules = sorted(f"portal.store.{p.stem}" for p in (PORTAL / "store").glob("*.py") if p.stem != "__init__")
    script = f"""
import json, sys
for name in {modules!r} + ["portal.store.migrations"]:
    __import__(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("portal."))))
"""
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True).stdout)
    assert "portal.store.registry" in loaded and "portal.store.derived" in loaded
    above = [m for m in loaded if not m.startswith(("portal.store", "portal.export", "portal.core"))]
    assert above == []
