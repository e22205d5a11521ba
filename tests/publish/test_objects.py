"""What counts as a file of the site: dot-files (manifests, locks, temp files) and path tricks never do."""

from __future__ import annotations

from portal.publish.objects import is_site_path


def test_dot_files_and_tricky_paths_are_not_site_paths():
    assert is_site_path("c/k/i/I1.html")
    for path in (".manifest.json", ".build.lock", "c/k/.x.html.12.tmp", "../x", "/etc/passwd", "c//x", ""):
        assert not is_site_path(path)
