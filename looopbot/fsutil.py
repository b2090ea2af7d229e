"""Small file primitives: atomic writes and reading the end of a file without the rest."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# File times come from a coarse kernel clock that runs up to a tick (≤ 10 ms) behind
# time.time(): a file made just after a moment can look older than it. Comparisons of a
# file's age with "when this record began" allow this much.
COARSE_CLOCK_S = 0.05


def write_atomic(
    path: Path, data: str | bytes, mode: int | None = None, *, durable: bool = True
) -> None:
    """Replace `path` so a reader (or a kill -9) sees the old bytes or the new, never half.

    The temporary file sits in the same directory so the rename is atomic. A durable write
    is fsynced before the rename so a power cut cannot leave the new name pointing at empty
    data; local scratch (caches, the last-beat note) skips that cost.
    """
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        try:
            os.write(fd, raw)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line with a single write(2), so a kill never leaves half a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        # A file whose last line lacks its newline (a hand edit) must not swallow ours.
        prefix = b""
        size = os.fstat(fd).st_size
        if size:
            with path.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    prefix = b"\n"
        os.write(fd, prefix + line.rstrip("\n").encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def tail_lines(path: Path, n: int, block: int = 8192) -> list[str]:
    """The last `n` lines of a file, reading backwards only as far as needed."""
    if n <= 0:
        return []
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return []
    with f:
        end = f.seek(0, os.SEEK_END)
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return lines[-n:]


def read_bytes_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def drop_dead_temp_files(folder: Path) -> None:
    """Remove the `.<name>.<pid>.tmp` files (see write_atomic) in `folder` whose writer is
    gone: a process killed inside write_atomic leaves one. A live pid's file is left alone:
    its writer may be about to rename it."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        pid = name[:-4].rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
