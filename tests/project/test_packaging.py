"""A regular (non-editable) install carries the built-in templates: pyproject.toml lists every template
folder as data-files, and portal/core/templating.py finds them under <prefix>/share/ar-portal/templates."""

from __future__ import annotations

import tomllib
from pathlib import Path

from portal.core import templating as render

ROOT = Path(__file__).resolve().parents[2]


def test_every_template_folder_is_installed_as_data_files():
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    folders = sorted(p.name for p in (ROOT / "templates").iterdir() if p.is_dir())
    assert folders == sorted(key.rsplit("/", 1)[1] for key in data_files)
    for folder in folders:
        assert data_files[f"share/ar-portal/templates/{folder}"] == [f"templates/{folder}/*"]
        assert not [p for p in (ROOT / "templates" / folder).iterdir() if p.is_dir()], "data-files are flat"


def test_a_checkout_uses_its_own_templates_and_an_install_the_shared_copy(tmp_path, monkeypatch):
    assert render.BUILTIN_TEMPLATES == ROOT / "templates"
    installed = tmp_path / "share" / "ar-portal" / "templates"
    (installed / "pages").mkdir(parents=True)
    monkeypatch.setattr(render, "__file__", str(tmp_path / "site-packages" / "portal" / "render.py"))
    monkeypatch.setattr(render.sysconfig, "get_path", lambda name: str(tmp_path))
    assert render._builtin_templates() == installed
