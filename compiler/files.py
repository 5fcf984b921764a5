"""Which files a list of paths names, and the workflow key of each.

The workflow key is what the Go flowlord puts in a task's meta as `workflow=` and how it finds a
task's children (spec §5.1): the file's path after the configured workflow folder. Here a folder
argument plays that part: a file found in it gets its path relative to the folder, with forward
slashes (`sub/etl.toml`); a file named directly gets its base name, as in Go's single-file mode.
Two files with one key would overwrite each other's phases in Go; that is FL503.
"""

from __future__ import annotations

import errno
import os
from typing import Iterable, Sequence

from . import codes
from .diagnostics import Label, Sink
from .source import SourceFile

SUFFIXES = (".toml",)  # what a folder search picks up


def find_workflow_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(path, workflow key) of every workflow file that `paths` name, in order.

    Files are taken as given; folders are searched recursively for *.toml files, sorted, hidden
    files and folders skipped. A file reached twice (two arguments, or a link) is listed once,
    with the key of its first occurrence. A missing path, or a folder that cannot be read,
    raises OSError naming it; files are not opened here.
    """
    found: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    for path in paths:
        if os.path.isdir(path):
            candidates = _folder_files(path)
        elif os.path.exists(path):
            candidates = [(path, workflow_key(path))]
        else:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        for file, key in candidates:
            status = os.stat(file)  # one call, where realpath took one per folder of the path
            identity = (status.st_dev, status.st_ino)
            if identity not in seen:
                seen.add(identity)
                found.append((file, key))
    return found


def workflow_key(file: str, folder: str | None = None) -> str:
    """`file`'s path relative to `folder` with `/` separators, or its base name without one."""
    if folder is None:
        return os.path.basename(file)
    return os.path.relpath(file, folder).replace(os.sep, "/")


def _folder_files(folder: str) -> list[tuple[str, str]]:
    """(path, workflow key) of the folder's workflow files, sorted by path."""

    def fail(error: OSError) -> None:
        raise error

    found = []
    for root, folders, files in os.walk(folder, onerror=fail):
        folders[:] = [name for name in folders if not name.startswith(".")]
        key_prefix = workflow_key(os.path.join(root, ""), folder)  # once per folder, not per file
        key_prefix = "" if key_prefix == "." else key_prefix + "/"
        found += [
            (os.path.join(root, name), key_prefix + name)
            for name in files
            if name.endswith(SUFFIXES) and not name.startswith(".")
        ]
    return sorted(found)


def check_keys(keys: Iterable[tuple[str, str]], sources: dict[str, SourceFile], sink: Sink) -> None:
    """FL503 for each file whose workflow key an earlier file already has.

    `keys` holds (path, key) in the files' order. The diagnostic points at the start of both
    files; a file missing from `sources` is read (the parallel lint keeps only blamed files).
    """
    first: dict[str, str] = {}
    for path, key in keys:
        other = first.setdefault(key, path)
        if other == path:
            continue
        for file in (path, other):
            if file not in sources:
                with open(file, encoding="utf-8", errors="replace") as handle:
                    sources[file] = SourceFile(file, handle.read())
        sink.emit(
            codes.WORKFLOW_KEY_COLLISION.at(
                sources[path].span(0, 0),
                f"`{other}` has the same workflow key, `{key}`",
                help="pass the folder that holds both, so each key keeps its sub-folder, "
                "or rename one of the files",
                notes=(
                    "the key is the path after the workflow folder (the base name of a file "
                    "named directly); the Go flowlord would load one file over the other",
                ),
                secondary=(Label(sources[other].span(0, 0), f"`{key}` is also this file's key"),),
            )
        )
