"""Compile NMODL mechanisms once per content and reuse them: a process-safe nrnivmodl cache.

:func:`compiled_mechanisms` hashes the .mod files (names and contents, plus any file they
``INCLUDE``), the NEURON version, the ``nrnivmodl`` it will use and the machine type, and keeps
one compiled directory per hash under the cache root. Compilation happens in a temporary
directory inside the cache root and is renamed into place, under an exclusive file lock, so
concurrent processes (sweeps, MPI ranks) compile once and never see a half-built directory.
Nothing here imports NEURON.

Cache root: ``$L5NET_CACHE_DIR``, else ``$XDG_CACHE_HOME/l5net``, else ``~/.cache/l5net``.

Compiler flags: ``nrnivmodl`` compiles with ``-O2``. CoreNEURON builds add
:data:`CORENEURON_CXXFLAGS` (``-O3 -march=native``: the mechanisms are compiled on the machine
that runs them; measured 6 % less simulation CPU on the default network, the NEURON engine
gains nothing from them; ``-fno-math-errno -fno-trapping-math``: library maths need not set
``errno`` and floating-point operations need not keep their exception flags, which changes no
computed value (the default run's soma trace is bit-identical with and without them) and
measured 5 % less simulation CPU). ``$L5NET_MECH_CXXFLAGS`` replaces the extra flags of every build
(empty: none). Each flag is first tried on an empty translation unit with the C++ compiler
``nrnivmodl`` uses (``$CXX``, else Python's build compiler); a refused flag is left out, and
if the compilation with the flags fails anyway it is repeated without them. The flags (and,
for ``-march=native``, the CPU model) are part of the cache key; ``cxxflags.txt`` in the
compiled directory says which flags were used.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ComponentError
from .output import make_temp_dir

__all__ = [
    "MIGRATION_GUIDE",
    "cache_root",
    "compile_errors",
    "CORENEURON_CXXFLAGS",
    "compiled_mechanisms",
    "compiler_accepts",
    "included_files",
    "file_lock",
    "mechanisms_key",
    "mechanisms_library",
    "neuron_version",
    "nrnivmodl_path",
    "optimization_flags",
    "sources_digest",
]

#: Extra C++ flags of CoreNEURON mechanism builds (see the module docstring).
CORENEURON_CXXFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math")
_FLAGS_ENV = "L5NET_MECH_CXXFLAGS"
_FLAGS_FILE = "cxxflags.txt"

_LIB_NAMES = ("libnrnmech.so", "libnrnmech.dylib", "nrnmech.dll")
_INCLUDE = re.compile(rb'^\s*INCLUDE\s+"([^"]+)"', re.M)
_TAIL_LINES = 30


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root directory (created if missing).

    Parameters
    ----------
    cache_dir : path, optional
        Use this instead of the environment-derived default.
    """
    if cache_dir is not None:
        root = Path(cache_dir)
    elif os.environ.get("L5NET_CACHE_DIR"):
        root = Path(os.environ["L5NET_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "l5net"
    else:
        root = Path.home() / ".cache" / "l5net"
    root = root.expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ComponentError(f"cannot create the cache directory {root} ({exc})") from None
    return root


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no inter-process locking, renames stay atomic
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def nrnivmodl_path() -> Path:
    """``nrnivmodl`` next to the running Python first, then on ``PATH``.

    Raises
    ------
    ComponentError
        If there is none (NEURON is not installed).
    """
    beside = Path(sys.executable).parent / "nrnivmodl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nrnivmodl")
    if found:
        return Path(found)
    raise ComponentError(
        f"nrnivmodl not found (looked in {beside.parent} and on PATH): NEURON is needed to "
        "compile the cell's mechanisms; install NEURON (pip install neuron) or give a "
        "ready 'cell.segments_file'"
    )


def neuron_version() -> str:
    """The installed NEURON's version string, without importing it (``"unknown"`` if absent)."""
    for dist in ("neuron", "NEURON", "neuron-nightly"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def included_files(mod_file: Path) -> list[Path]:
    """The files a .mod file ``INCLUDE``s that lie next to it (the ones compiled with it)."""
    mod_file = Path(mod_file)
    try:
        text = mod_file.read_bytes()
    except OSError as exc:
        raise ComponentError(f"{mod_file}: cannot read NMODL file ({exc})") from None
    out = []
    for inc in _INCLUDE.findall(text):
        name = inc.decode()
        path = mod_file.parent / name
        if Path(name).name == name and path.is_file():
            out.append(path)
    return out


def _sources(mod_files: Sequence[Path]) -> dict[str, bytes]:
    """File name -> contents for every .mod file and every file it INCLUDEs (next to it)."""
    out: dict[str, bytes] = {}
    origin: dict[str, Path] = {}
    for mod in mod_files:
        mod = Path(mod)
        try:
            text = mod.read_bytes()
        except OSError as exc:
            raise ComponentError(f"{mod}: cannot read NMODL file ({exc})") from None
        if mod.name in origin and origin[mod.name] != mod.resolve():
            raise ComponentError(
                f"two NMODL files share the name {mod.name}: {origin[mod.name]} and {mod}"
            )
        origin[mod.name] = mod.resolve()
        out[mod.name] = text
        for inc_path in included_files(mod):
            out.setdefault(inc_path.name, inc_path.read_bytes())
    return out


def sources_digest(mod_files: Sequence[Path]) -> str:
    """SHA-256 (hex) of the .mod files' names and contents (and their INCLUDEd files)."""
    h = hashlib.sha256(b"nmodl-sources-v1\0")
    for name, text in sorted(_sources(mod_files).items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(text).digest())
    return h.hexdigest()


def _cxx() -> list[str]:
    """The C++ compiler command ``nrnivmodl`` uses: ``$CXX``, else Python's build compiler."""
    return shlex.split(os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++")


_ACCEPTED: dict[tuple[tuple[str, ...], str], bool] = {}


def compiler_accepts(flag: str, cxx: Sequence[str] | None = None) -> bool:
    """Whether the C++ compiler compiles an empty translation unit with ``flag`` (cached)."""
    cmd = list(cxx) if cxx is not None else _cxx()
    key = (tuple(cmd), flag)
    if key not in _ACCEPTED:
        try:
            proc = subprocess.run(
                [*cmd, flag, "-x", "c++", "-c", "-", "-o", os.devnull],
                input="int l5net_probe() { return 0; }\n",
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            _ACCEPTED[key] = proc.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _ACCEPTED[key] = False
    return _ACCEPTED[key]


def optimization_flags(coreneuron: bool = False) -> tuple[str, ...]:
    """The extra C++ flags of a build: ``$L5NET_MECH_CXXFLAGS`` if set, else
    :data:`CORENEURON_CXXFLAGS` for CoreNEURON builds and none otherwise; flags the compiler
    refuses (:func:`compiler_accepts`) are left out."""
    env = os.environ.get(_FLAGS_ENV)
    if env is not None:
        wanted = tuple(shlex.split(env))
    else:
        wanted = CORENEURON_CXXFLAGS if coreneuron else ()
    return tuple(f for f in wanted if compiler_accepts(f))


def _cpu_model() -> str:
    """The CPU model and its feature flags (what ``-march=native`` compiles for)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = {}
    for line in lines:
        name, _, value = line.partition(":")
        name = name.strip()
        if (
            name in ("vendor_id", "model name", "flags", "Features", "CPU part")
            and name not in keep
        ):
            keep[name] = value.strip()
    return repr(sorted(keep.items()))


def mechanisms_key(
    mod_files: Sequence[Path],
    *,
    nrnivmodl: Path | None = None,
    coreneuron: bool = False,
    flags: Sequence[str] = (),
) -> str:
    """Cache key of a compiled mechanisms directory (24 hex digits).

    Covers the sources (:func:`sources_digest`), the NEURON version, the ``nrnivmodl`` location
    (the built library links to that installation) and the machine type; a CoreNEURON build
    (``nrnivmodl -coreneuron``) has its own key, and so has every set of extra compiler
    ``flags`` (with ``-march=native``: per CPU model, so a shared cache never hands one
    machine's build to another CPU).
    """
    tool = nrnivmodl if nrnivmodl is not None else nrnivmodl_path()
    h = hashlib.sha256()
    for part in (
        sources_digest(mod_files),
        neuron_version(),
        str(Path(tool).resolve()),
        platform.machine(),
        sys.platform,
    ):
        h.update(part.encode() + b"\0")
    if coreneuron:
        h.update(b"coreneuron\0")
    if flags:
        h.update(("cxxflags " + " ".join(flags)).encode() + b"\0")
        if any(f.startswith(("-march=native", "-mcpu=native", "-mtune=native")) for f in flags):
            h.update(_cpu_model().encode() + b"\0")
    return h.hexdigest()[:24]


def mechanisms_library(directory: str | os.PathLike) -> Path:
    """The compiled library inside a directory built by ``nrnivmodl``.

    Parameters
    ----------
    directory : path
        A directory :func:`compiled_mechanisms` returned (or any ``nrnivmodl`` run directory).

    Raises
    ------
    ComponentError
        If no ``<arch>/[.libs/]libnrnmech.*`` is found.
    """
    directory = Path(directory)
    arches = [platform.machine(), "x86_64", "aarch64", "arm64", "i686", "powerpc", "umac"]
    for arch in dict.fromkeys(arches):
        for sub in ("", ".libs"):
            for lib in _LIB_NAMES:
                path = directory / arch / sub / lib
                if path.is_file():
                    return path
    for lib in _LIB_NAMES:  # Windows (mknrndll) puts it at the top
        if (directory / lib).is_file():
            return directory / lib
    raise ComponentError(f"{directory}: no compiled mechanisms library (libnrnmech) in it")


def _has_library(directory: Path) -> bool:
    try:
        mechanisms_library(directory)
    except ComponentError:
        return False
    return True


#: NEURON's guide to porting NMODL (VERBATIM C code) to the C++ of NEURON 9.
MIGRATION_GUIDE = "https://www.neuronsimulator.org/en/9.0.0/guide/porting_mechanisms_to_cpp.html"
_CXX_ERROR = re.compile(
    r"^(?P<file>[^\s:]+)\.(?:cpp|c):(?P<line>\d+)(?::\d+)?: (?:fatal )?error: (?P<msg>.*)$", re.M
)
_NMODL_ERROR = re.compile(
    r"^\s*(?:Error:\s*)?(?P<msg>.*?)\s+at line (?P<line>\d+) in file (?P<file>\S+?)\.mod\b", re.M
)


def compile_errors(output: str, origins: dict[str, Path]) -> list[str]:
    """The first error of each NMODL file in ``nrnivmodl``'s output, one line per file.

    Parameters
    ----------
    output : str
        Everything ``nrnivmodl`` printed.
    origins : dict
        ``.mod`` file name -> the user's file it was copied from (named in the lines).

    Returns
    -------
    list of str
        ``"<file>: line N: <message>"`` in the order the errors appear: translation errors
        (nocmodl: the line is the .mod file's) and C++ errors (the line is the generated
        .cpp file's).
    """
    found: dict[str, str] = {}
    hits = [(m.start(), m, "mod") for m in _NMODL_ERROR.finditer(output)]
    hits += [(m.start(), m, "cpp") for m in _CXX_ERROR.finditer(output)]
    for _, m, kind in sorted(hits, key=lambda hit: hit[0]):
        stem = Path(m.group("file")).name
        mod = f"{stem}.mod"
        if mod in found:
            continue
        origin = origins.get(mod, Path(mod))
        where = (
            f"line {m.group('line')}"
            if kind == "mod"
            else f"line {m.group('line')} of the generated {stem}.cpp"
        )
        found[mod] = f"{origin}: {where}: {m.group('msg').strip()}"
    return list(found.values())


class _BuildFailed(ComponentError):
    """``nrnivmodl`` failed; ``translation``: NMODL itself refused a file (no flag can help)."""

    def __init__(self, translation: bool, message: str) -> None:
        super().__init__(message)
        self.translation = translation


def _compile(
    sources: dict[str, bytes],
    build: Path,
    tool: Path,
    quiet: bool,
    origins: dict[str, Path],
    coreneuron: bool = False,
    flags: Sequence[str] = (),
) -> None:
    mod_dir = build / "mod"
    mod_dir.mkdir()
    for name, text in sources.items():
        (mod_dir / name).write_bytes(text)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(tool.parent), env.get("PATH", "")])
    if not quiet:
        print(
            f"compiling {sum(n.endswith('.mod') for n in sources)} NMODL files with {tool}",
            file=sys.stderr,
        )
    try:
        proc = subprocess.run(
            [
                str(tool),
                *(["-coreneuron"] if coreneuron else []),
                *(["-incflags", " ".join(flags)] if flags else []),
                "mod",
            ],
            cwd=build,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise ComponentError(f"cannot run {tool} ({exc})") from None
    (build / "nrnivmodl.log").write_text(proc.stdout)
    (build / _FLAGS_FILE).write_text(" ".join(flags) + "\n")
    if not quiet:
        sys.stderr.write(proc.stdout)
    if proc.returncode != 0 or not _has_library(build):
        log = build.parent / f"{build.name.lstrip('.')}.failed.log"
        try:
            log.write_text(proc.stdout)
        except OSError:
            log = None
        full = f"\nFull compiler output: {log}" if log else ""
        errors = compile_errors(proc.stdout, origins)
        translation = bool(_NMODL_ERROR.search(proc.stdout))
        if errors and coreneuron:
            lines = "\n".join(f"  {e}" for e in errors)
            n = len(errors)
            raise _BuildFailed(
                translation,
                f"{n} NMODL file{'s' if n != 1 else ''} did not compile for CoreNEURON "
                f"(nrnivmodl -coreneuron, NEURON {neuron_version()}):\n{lines}\nCoreNEURON "
                f"needs THREADSAFE mechanisms without NEURON-only VERBATIM code (hoc objects, "
                f"nrn_random / legacy Random calls); random streams are portable as NMODL "
                f"RANDOM variables. Run with --engine neuron to use NEURON itself.{full}",
            )
        if errors:
            lines = "\n".join(f"  {e}" for e in errors)
            n = len(errors)
            raise _BuildFailed(
                translation,
                f"{n} NMODL file{'s' if n != 1 else ''} did not compile with NEURON "
                f"{neuron_version()}:\n{lines}\nNEURON 9 compiles mechanisms as C++: VERBATIM "
                f"code written for NEURON 8 or earlier (legacy random-number code above all) "
                f"needs porting, see NEURON's C++ migration guide, {MIGRATION_GUIDE} "
                f"(random streams are portable as NMODL RANDOM variables).{full}",
            )
        tail = "\n".join(proc.stdout.rstrip().splitlines()[-_TAIL_LINES:])
        raise _BuildFailed(
            translation,
            f"nrnivmodl failed (exit status {proc.returncode}) compiling "
            f"{', '.join(sorted(n for n in sources if n.endswith('.mod')))}:\n{tail}{full}",
        )


def compiled_mechanisms(
    mod_files: Sequence[Path],
    *,
    cache_dir: str | os.PathLike | None = None,
    quiet: bool = True,
    coreneuron: bool = False,
) -> Path:
    """Compile ``mod_files`` with ``nrnivmodl`` (once per content) and return the directory.

    Parameters
    ----------
    mod_files : sequence of Path
        The .mod files; their file names must be distinct.
    cache_dir : path, optional
        Cache root (default: :func:`cache_root`).
    quiet : bool
        When false, announce the compilation and copy the compiler output to stderr.
    coreneuron : bool
        Compile with ``nrnivmodl -coreneuron`` (the library then serves NEURON and CoreNEURON;
        cached under its own key).

    Returns
    -------
    Path
        A directory that ``neuron.load_mechanisms()`` accepts
        (``<cache>/mechanisms/<key>``, holding ``<arch>/libnrnmech.so``).

    Raises
    ------
    ComponentError
        If ``nrnivmodl`` is missing or the compilation fails (with the compiler output's tail).
    """
    if not mod_files:
        raise ComponentError("no NMODL files to compile")
    tool = nrnivmodl_path()
    sources = _sources(mod_files)
    flags = optimization_flags(coreneuron)
    key = mechanisms_key(mod_files, nrnivmodl=tool, coreneuron=coreneuron, flags=flags)
    parent = cache_root(cache_dir) / "mechanisms"
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / key
    if _has_library(final):  # renamed into place whole, so existing means complete
        return final
    with file_lock(parent / f"{key}.lock"):
        if _has_library(final):  # another process built it while we waited
            return final
        # the umask's permissions (not mkdtemp's 0700): the cache may be shared
        build = make_temp_dir(parent, f".build-{key}-")
        try:
            origins = {Path(m).name: Path(m) for m in mod_files}
            try:
                _compile(sources, build, tool, quiet, origins, coreneuron, flags)
            except _BuildFailed as exc:
                if not flags or exc.translation:
                    raise
                # the flags passed the probe but not this build: build without them (same
                # key, so the fallback is found next time; cxxflags.txt is then empty)
                shutil.rmtree(build, ignore_errors=True)
                build = make_temp_dir(parent, f".build-{key}-")
                _compile(sources, build, tool, quiet, origins, coreneuron)
            if final.exists():  # a stale, incomplete directory from outside our protocol
                stale = make_temp_dir(parent, f".stale-{key}-")
                os.replace(final, stale / key)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(build, final)
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
    return final
