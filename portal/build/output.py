"""Writing the output folder: every file appears whole or not at all, and only when its content changed.

A page the manifest does not list yet is created in place (a build that dies mid-write leaves a file the next
build, which does not find it in the manifest either, writes again); every other file is replaced atomically
(temp file + rename), so a web server serving the folder never sends half a page. Writing 120k pages is the
build's hot path: `write_page` spends three system calls per page and creates each folder once per process.
"""

from __future__ import annotations

import os
from pathlib import Path

from portal.publish.manifest import atomic_write


def write_if_changed(out: Path, path: str, data: bytes, digest: str, old: tuple | None) -> bool:
    """Write `data` atomically unless the folder holds it already (`old`: its manifest entry)."""
    target = out / path
    if old and old[0] == digest and target.is_file():
        return False
    atomic_write(target, data)
    return True


_made_folders: set[str] = set()


def write_page(target: str, data: bytes, known: bool, defer: bool = False) -> str | None:
    """The hot path of a full build (one call per page). A file the manifest does not list yet is created in
    place: if the build dies mid-write, the next build, which does not find it in the manifest either, writes it
    again. A file that exists is replaced atomically (temp file + rename), so a reader never sees half of it;
    with `defer`, the rename is left to the caller, whose temp file name is returned.
    Folders are created once per process instead of once per file."""
    folder, name = target.rsplit("/", 1)
    if folder not in _made_folders:
        os.makedirs(folder, exist_ok=True)
        _made_folders.add(folder)
    if not known:
        try:
            _write_new(target, data)
            return None
        except FileExistsError:
            pass  # left by an interrupted build: replace it atomically below
        except FileNotFoundError:
            _made_folders.discard(folder)  # removed since (an earlier build pruned it)
            os.makedirs(folder, exist_ok=True)
            _made_folders.add(folder)
    temp = f"{folder}/.{name}.{os.getpid()}.tmp"
    try:
        _write_new(temp, data, replace=True)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        _write_new(temp, data, replace=True)
    if defer:
        return temp
    os.replace(temp, target)
    return None


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_ANY = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write_new(path: str, data: bytes, replace: bool = False) -> None:
    """open(path, "xb") (or "wb" with `replace`) + write + close in three system calls instead of six (open()
    also runs fstat, ioctl and lseek): a full build writes 120k pages."""
    fd = os.open(path, _ANY if replace else _NEW, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def prune_empty_parents(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to `root` while they are empty (a removed customer leaves no folder)."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
