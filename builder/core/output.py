"""Safe output: build in a staging directory, then move the finished files into place.

The builder writes a manifest (``.l5net-manifest.json``) listing every file it put in the
output directory with its size and modification time. A later build replaces exactly those
files (when unchanged since); any other file in the way is "foreign" and is never overwritten,
deleted or renamed unless ``force=True``. A build that fails before :meth:`Staging.commit`
leaves the output directory exactly as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

__all__ = [
    "MANIFEST_NAME",
    "Staging",
    "atomic_path",
    "clear_killed_writes",
    "in_staging",
    "make_temp_dir",
    "read_manifest",
]

MANIFEST_NAME = ".l5net-manifest.json"
_STAGING_PREFIX = ".l5net-staging-"
_MANIFEST_FORMAT = 1
#: Staging directories open in this process (see :func:`in_staging`).
_OPEN_STAGING: set[Path] = set()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; move it onto ``path`` on success.

    The one way this package writes a file: readers never see a half-written one. On any
    exception the temporary file is removed and ``path`` is left untouched (an ``OSError``
    becomes an :class:`OutputError` naming ``path``). Inside an open staging directory
    (:func:`in_staging`), ``path`` itself is yielded (removed on an exception). The temporary
    file, ``.NAME.<host>.<pid>.<random>.tmp``, is created with mode 0o666 filtered by the
    umask, like an ordinary new file; its name says who wrote it, so that the leftover of a
    killed process can be told apart (:func:`clear_killed_writes`). Inside a staging directory
    the caller creates ``path`` (a file made empty here first would be truncated by the
    caller's create, which on ext4 makes closing the file start its writeback at once).
    """
    target = Path(path)
    if in_staging(target):  # a staging directory is itself the temporary place: no rename
        # Not created here: the writer creates it. An empty file made first would be truncated
        # by the writer's own create (HDF5's, open(..., "w")), and ext4 flushes a file
        # truncated to 0 when it is closed (auto_da_alloc): the file's writeback would start
        # in this process at once (CPU and wall), not later in the kernel's flusher threads.
        try:
            yield target
        except BaseException as exc:
            target.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise OutputError(f"{target}: cannot write: {exc}") from exc
            raise
        return
    tmp = target.with_name(f".{target.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create a file in {target.parent}: {exc}") from exc
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: cannot write: {exc}") from exc
        raise


def clear_killed_writes(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` when its process was
    killed between writing and renaming: those of this host whose process is gone. Files of
    other hosts, of live processes and anything else are left alone. Returns what was removed.
    """
    removed = []
    for tmp in Path(folder).glob(f".*.{_host()}.*.*.tmp"):
        pid = tmp.name[: -len(".tmp")].rsplit(".", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except PermissionError:
            pass
    return removed


def in_staging(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside a staging directory open in this process.

    Writers use it to skip their own temporary file + rename: the staging directory is
    already invisible until :meth:`Staging.commit` and is removed whole if the build fails, so a
    file written in place there can never be seen half-written.
    """
    if not _OPEN_STAGING:
        return False
    p = Path(path).absolute()
    return any(parent in _OPEN_STAGING for parent in p.parents)


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """Create a new, uniquely named directory ``parent/<prefix><random>`` and return its path.

    Unlike :func:`tempfile.mkdtemp` (always ``drwx------``), the directory gets the permissions
    the umask gives any new directory, because a staging directory is renamed into place as the
    user's output (colleagues on a shared cluster must be able to read it with umask 022).

    Raises
    ------
    OutputError
        If ``parent`` is not a directory we can create entries in.
    """
    for _ in range(100):
        path = Path(parent) / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)  # the umask takes away what the user does not grant
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(
                f"{parent}: cannot create a directory there ({exc.strerror or exc})"
            ) from None
        return path
    raise OutputError(f"{parent}: cannot find a free name for a temporary directory")


def read_manifest(outdir: Path) -> dict[str, dict[str, int]]:
    """Files the builder wrote into ``outdir`` last time: relative path -> {size, mtime_ns}."""
    path = outdir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise ValueError
        return {str(k): dict(v) for k, v in files.items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise OutputError(
            f"{path}: the build manifest is unreadable; remove it or build with --force"
        ) from None


def _unchanged(path: Path, record: dict[str, int]) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return True
    return st.st_size == record.get("size") and st.st_mtime_ns == record.get("mtime_ns")


class Staging:
    """A temporary directory beside ``outdir`` whose contents replace our earlier output.

    Use as a context manager: the staging directory is removed on exit whatever happens.
    """

    def __init__(self, outdir: str | os.PathLike, *, force: bool = False):
        self.outdir = Path(outdir).absolute()
        self.force = force
        if self.outdir.exists() and not self.outdir.is_dir():
            raise OutputError(f"{self.outdir}: output path exists and is not a directory")
        # A new output directory is staged in its nearest existing ancestor and renamed into
        # place whole, so a failed build leaves not even an empty directory behind.
        self.fresh = not self.outdir.exists()
        anchor = self.outdir
        while not anchor.exists():
            anchor = anchor.parent
        if not anchor.is_dir() or not os.access(anchor, os.W_OK):
            raise OutputError(f"{anchor}: not a writable directory (output {self.outdir})")
        if self.fresh:
            self.previous: dict[str, dict[str, int]] = {}
        else:
            self.previous = read_manifest(self.outdir) if not force else _safe_manifest(self.outdir)
        _remove_abandoned_staging(anchor)
        try:
            self.dir = make_temp_dir(anchor, f"{_STAGING_PREFIX}{_host()}-{os.getpid()}-")
        except OutputError as exc:
            raise OutputError(f"{exc} (output {self.outdir})") from None
        _OPEN_STAGING.add(self.dir)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        _OPEN_STAGING.discard(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` inside the staging directory (parents created)."""
        p = self.dir / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def staged_files(self) -> list[str]:
        """Relative paths of the files staged so far, sorted (one scandir per directory)."""
        out: list[str] = []
        todo = [("", os.fspath(self.dir))]
        while todo:
            prefix, folder = todo.pop()
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append((f"{prefix}{entry.name}/", entry.path))
                    elif entry.is_file():
                        out.append(prefix + entry.name)
        return sorted(out)

    def conflicts(self) -> list[str]:
        """Relative paths that the new build would overwrite but that we did not write."""
        bad = []
        for rel in self.staged_files():
            target = self.outdir / rel
            if target.is_dir() or target.is_symlink() and not target.exists():
                bad.append(rel)
            elif target.exists():
                rec = self.previous.get(rel)
                if rec is None or not _unchanged(target, rec):
                    bad.append(rel)
        # A staged file whose parent path is a foreign *file* cannot be placed either.
        for rel in self.staged_files():
            for parent in Path(rel).parents:
                if parent != Path(".") and (self.outdir / parent).is_file():
                    bad.append(parent.as_posix())
        return sorted(set(bad))

    def commit(self) -> list[str]:
        """Move the staged files into place, drop our stale files, write the manifest.

        Returns the relative paths written. Raises OutputError (before touching anything) if
        a foreign file is in the way and ``force`` is false.
        """
        files = self.staged_files()
        if self.fresh and not self.outdir.exists():
            self._write_manifest(self.dir, files)
            self.outdir.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.dir, self.outdir)
                return files
            except OSError:  # created meanwhile by someone else: fall through, file by file
                (self.dir / MANIFEST_NAME).unlink(missing_ok=True)
        conflicts = self.conflicts()
        if conflicts and not self.force:
            shown = "\n".join(f"  {c}" for c in conflicts[:20])
            more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
            raise OutputError(
                f"{self.outdir}: refusing to overwrite {len(conflicts)} file(s) this builder did "
                f"not write (or that changed since it wrote them):\n{shown}{more}\n"
                "Choose another output directory (-o DIR) or pass --force to overwrite them."
            )
        for rel in files:
            target = self.outdir / rel
            if self.force:
                for parent in reversed(Path(rel).parents):
                    p = self.outdir / parent
                    if parent != Path(".") and p.is_file():
                        p.unlink()
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, target)
        new = set(files)
        for rel, rec in self.previous.items():
            target = self.outdir / rel
            if rel not in new and target.is_file() and _unchanged(target, rec):
                target.unlink()
                _prune_empty_parents(target.parent, self.outdir)
        self._write_manifest(self.outdir, files)
        return files

    @staticmethod
    def _write_manifest(where: Path, files: list[str]) -> None:
        records = {}
        for rel in files:
            st = (where / rel).stat()
            records[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        manifest = {"format": _MANIFEST_FORMAT, "tool": "l5net-builder", "files": records}
        tmp = where / f".{MANIFEST_NAME}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, where / MANIFEST_NAME)


def _host() -> str:
    return socket.gethostname().split(".")[0].replace("-", "_") or "host"


def _remove_abandoned_staging(anchor: Path) -> None:
    """Remove staging directories left by builds on this host that were killed (-9)."""
    for p in anchor.glob(f"{_STAGING_PREFIX}*"):
        parts = p.name[len(_STAGING_PREFIX) :].split("-")
        if len(parts) < 3 or parts[0] != _host() or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


def _safe_manifest(outdir: Path) -> dict[str, dict[str, int]]:
    try:
        return read_manifest(outdir)
    except OutputError:
        return {}


def _prune_empty_parents(start: Path, stop: Path) -> None:
    p = start
    while p != stop and stop in p.parents:
        try:
            p.rmdir()
        except OSError:
            return
        p = p.parent
