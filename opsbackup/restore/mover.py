"""Moving staged entries into the target: planned (and refused) before anything moves.

:func:`plan_moves` compares the staged tree with the target without changing anything: an
entry absent from the target is renamed into place; a staged directory meeting a real directory
is merged (its entries are considered one by one); a staged entry meeting a file, a symlink or
a special file replaces it (``rename`` replaces atomically and never follows a symlink; a
staged directory first unlinks what is in its way). A staged non-directory meeting a directory,
or a directory on another filesystem (where ``rename`` cannot go), refuses the whole restore
before the first move. Target directories are opened one component at a time with
``O_NOFOLLOW``, so a symlink in the target is replaced, never followed.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass, field

from opsbackup.errors import LocalIOError, UsageError
from opsbackup.restore.paths import show, split
from opsbackup.restore.staging import Staging, local_io, open_dir_at

__all__ = ["Action", "MovePlan", "apply_moves", "plan_moves"]


class Action(enum.Enum):
    RENAME = "rename"  # nothing there, or a non-directory replaced atomically
    REPLACE = "replace"  # a staged directory replaces a non-directory: unlink, then rename


@dataclass
class MovePlan:
    """The moves in order (parents before children), and the target directories merged into."""

    moves: list[tuple[bytes, Action]] = field(default_factory=list)
    merged: list[bytes] = field(default_factory=list)


def _lstat(dir_fd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def plan_moves(staging: Staging, target_fd: int, target: str) -> MovePlan:
    """Decide every move; UsageError/LocalIOError for a conflict, with nothing changed yet."""
    plan = MovePlan()
    todo: list[bytes] = [b""]
    while todo:
        parent = todo.pop()
        with local_io(f"cannot read {target}/{show(parent)}"):
            fd = open_dir_at(target_fd, parent)
        try:
            if parent and os.fstat(fd).st_dev != staging.dev:
                raise LocalIOError(
                    f"{target}/{show(parent)} is on another filesystem than {target}; restore into a "
                    "directory on one filesystem"
                )
            for name in staging.children.get(parent, []):
                path = parent + b"/" + name if parent else name
                found = _lstat(fd, name)
                staged_dir = path in staging.dirs
                if found is None:
                    plan.moves.append((path, Action.RENAME))
                elif stat.S_ISDIR(found.st_mode):
                    if not staged_dir:
                        raise UsageError(
                            f"{target}/{show(path)} is a directory, but the backup holds a file there; "
                            "move it away or restore into another directory"
                        )
                    plan.merged.append(path)
                    todo.append(path)
                else:
                    plan.moves.append((path, Action.REPLACE if staged_dir else Action.RENAME))
        finally:
            os.close(fd)
    return plan


def apply_moves(staging: Staging, target_fd: int, target: str, plan: MovePlan) -> None:
    """Carry out ``plan``, then remove the staged directories that were merged (now empty)."""
    for path, action in plan.moves:
        parent, name = split(path)
        src = staging.open_dir(parent)
        try:
            with local_io(f"cannot move into {target}:", path):
                dst = open_dir_at(target_fd, parent)
                try:
                    if action is Action.REPLACE:
                        os.unlink(name, dir_fd=dst)
                    os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
                finally:
                    os.close(dst)
        finally:
            os.close(src)
    for path in reversed(plan.merged):
        parent, name = split(path)
        fd = staging.open_dir(parent)
        try:
            with local_io(f"cannot clean up the staging directory {staging.name}"):
                os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)
