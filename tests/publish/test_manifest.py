"""The target's manifest: an unreadable one counts as none (publish then scans the target)."""

from __future__ import annotations

from portal.publish.manifest import decode_manifest


def test_unreadable_target_manifest_counts_as_none():
    assert decode_manifest(b"not gzip") is None
    assert decode_manifest(b"\x1f\x8b\x08\x00garbage") is None
