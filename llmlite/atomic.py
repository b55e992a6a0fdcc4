"""Writing a file so that readers see the old one or the whole new one, never a part.

atomic_write writes to a hidden temporary beside the destination (the same folder,
so the rename cannot cross file systems), flushes it to disk and renames it over the
destination; on any failure (a full disk, Ctrl-C, SIGTERM turned into an exception)
the temporary is removed and the destination is untouched. A process killed outright
(SIGKILL, power loss) still leaves its temporary: the next write to the same
destination removes the ones whose process is gone.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _part_prefix(dst: Path) -> str:
    return f".{dst.name}.part-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:           # someone else's process: alive
        return True
    return True


def remove_stale_parts(dst: Path) -> None:
    """Remove the temporaries that dead processes left beside dst (a reused PID
    looks alive and keeps its file: leaving one too many is the safe side)."""
    prefix = _part_prefix(dst)
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return                        # the write itself will say what is wrong with the folder
    for name in names:
        pid = name[len(prefix):]
        if name.startswith(prefix) and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.unlink(dst.parent / name)
            except OSError:
                pass


def _keep_mode(dst: Path, fd: int) -> None:
    """The replacement keeps the permissions of the file it replaces (a conversation
    saved 0600 stays private), as writing into that file in place did."""
    try:
        os.fchmod(fd, stat.S_IMODE(dst.stat().st_mode))
    except OSError:
        pass                          # no old file (or not ours to read): the umask's default


@contextmanager
def atomic_write(dst, mode: str = "wb", **open_kw) -> Iterator[IO]:
    """Open a temporary for writing in mode ("w" or "wb", open_kw as open() takes
    them); dst is replaced by it when the block ends without an exception. An
    OSError names dst, not the temporary the user never asked for."""
    dst = Path(dst)
    remove_stale_parts(dst)
    tmp = dst.with_name(f"{_part_prefix(dst)}{os.getpid()}")
    try:
        with open(tmp, mode, **open_kw) as f:
            _keep_mode(dst, f.fileno())
            yield f
            f.flush()
            os.fsync(f.fileno())      # the data on disk before the name points at it
        os.replace(tmp, dst)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        # a write's ENOSPC carries no file name, open's and rename's the temporary's
        if isinstance(e, OSError) and e.filename in (None, str(tmp)):
            raise OSError(e.errno, e.strerror or os.strerror(e.errno or errno.EIO), str(dst)) from None
        raise
