"""Reading users' configuration files: which ones, bounded, UTF-8, and one clear error.

pilot-discovery reads whatever lands in its `--config-dir`, and the CLI whatever it is given.
Opening and reading must not be able to hang (a FIFO blocks `open()` until a writer comes),
nor to exhaust memory (a symlink to /dev/zero never ends), nor to raise anything but
SourceError, whose message names the file and the cause.

In a directory, files ending in .yaml, .yml or .json are configuration, wherever they are
under it, except hidden ones and those under hidden directories: editors' temporary files,
`.git/`, and the `..data/` and `..2024_01_01_...` directories of a mounted Kubernetes
ConfigMap (whose files are also linked from the top, and would be read twice). Symlinks to
files are followed (a ConfigMap's files are symlinks); symlinks to directories are not, so a
link cannot make the walk loop.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 32 * 1024 * 1024
SUFFIXES = (".yaml", ".yml", ".json")
_MIB = 1024 * 1024
_TYPES = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class SourceError(Exception):
    """A file that cannot be read as configuration; the message says which and why.

    `missing` is true when nothing is at the path any more (removed, or a directory on the
    way replaced by a file), as opposed to something there that cannot be read; `changing`
    when the file was written to while it was read, so what was read may be half a write.
    """

    def __init__(
        self, path: Path | str, cause: str, *, missing: bool = False, changing: bool = False
    ) -> None:
        self.path, self.cause = str(path), cause
        self.missing, self.changing = missing, changing
        super().__init__(f"{path}: {cause}")


def read_bytes(path: Path, *, limit: int = MAX_BYTES, special_ok: bool = False) -> bytes:
    """The file's bytes; SourceError when it is not a readable regular file within `limit`.

    `special_ok` lets a file named on a command line be a pipe or a device
    (`-f <(helm template ...)`, `-f /dev/stdin`): the user asked for it, and the size limit
    still bounds the read. In a watched directory only regular files are configuration.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise _os_error(path, e) from None
    if stat.S_ISDIR(mode) or not (special_ok or stat.S_ISREG(mode)):
        raise SourceError(path, f"not a regular file: it is {_kind(mode)}")
    # Without O_NONBLOCK, opening a FIFO waits for a writer; with it, it returns at once.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | (0 if special_ok else os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _os_error(path, e) from None
    try:
        # The path may have been replaced between stat() and open(): judge what was opened.
        opened = os.fstat(fd)
        if not (special_ok or stat.S_ISREG(opened.st_mode)):
            raise SourceError(path, f"not a regular file: it is {_kind(opened.st_mode)}")
        if stat.S_ISREG(opened.st_mode) and opened.st_size > limit:
            raise _too_large(path, limit, opened.st_size)
        data = _read_bounded(fd, path, limit)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
            raise SourceError(path, "written to while it was read", changing=True)
        return data
    except OSError as e:
        raise _os_error(path, e) from None
    finally:
        os.close(fd)


def _read_bounded(fd: int, path: Path, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(path, limit, None)  # it grew, or is a device without a size
    return b"".join(chunks)


def _too_large(path: Path, limit: int, size: int | None) -> SourceError:
    actual = f" ({size / _MIB:.1f} MiB)" if size is not None else ""
    return SourceError(path, f"larger than the {limit / _MIB:g} MiB limit for a file{actual}")


def decode(data: bytes, path: Path | str) -> str:
    """UTF-8 text, as Kubernetes requires of YAML; SourceError naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex()
        hint = ""
        if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            hint = "; it looks like UTF-32: save it as UTF-8"
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint = "; it looks like UTF-16: save it as UTF-8"
        raise SourceError(path, f"not UTF-8 text: byte 0x{bad} at offset {e.start}{hint}") from None


def read_text(path: Path, *, limit: int = MAX_BYTES, special_ok: bool = False) -> str:
    return decode(read_bytes(path, limit=limit, special_ok=special_ok), path)


def _kind(mode: int) -> str:
    return _TYPES.get(stat.S_IFMT(mode), "an unknown kind of file")


def _os_error(path: Path, e: OSError) -> SourceError:
    if e.errno == errno.ELOOP:
        return SourceError(path, "symlink loop (too many levels of symbolic links)")
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            target = os.readlink(path)
        except OSError:  # not a symlink, or gone: nothing is there
            return SourceError(path, "no such file", missing=True)
        return SourceError(path, f"broken symlink to {target!r}")
    return SourceError(path, f"cannot read: {e.strerror or e}")


def read_argument(name: str) -> str:
    """A file named on a command line as text, `-` being standard input; SourceError otherwise."""
    if name != "-":
        return read_text(Path(name), special_ok=True)
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _too_large(Path("<stdin>"), MAX_BYTES, None)
    return decode(data, "<stdin>")


def visible(path: Path, root: Path) -> bool:
    """Whether `path` is under `root` with no hidden part on the way."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    return not any(part.startswith(".") for part in parts)


def wanted(path: Path, root: Path) -> bool:
    """Whether a file at `path` would be configuration of the directory `root`."""
    return path.suffix in SUFFIXES and visible(path, root)


@dataclass
class Scan:
    files: list[Path] = field(default_factory=list)  # sorted
    unlisted: dict[Path, str] = field(default_factory=dict)  # directories that cannot be read


def scan(directory: Path, root: Path) -> Scan:
    """Every configuration file under `directory` (`root` or a directory under it), and the
    directories that could not be listed, with why."""
    found = Scan()

    def failed(e: OSError) -> None:
        where = Path(e.filename) if e.filename else directory
        found.unlisted[where] = f"{where}: cannot list this directory: {e.strerror or e}"

    for top, dirs, files in os.walk(directory, onerror=failed):
        here = Path(top)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.files.extend(here / f for f in files if wanted(here / f, root))
    found.files.sort()
    return found
