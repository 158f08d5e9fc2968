"""Derive a cell's segment table with NEURON, exactly as BMTK BioNet will discretise the cell.

The builder calls :func:`segment_table`, which never imports NEURON itself: it looks for a
cached table first (``<cache>/segments/<key>.csv``; a hit costs one CSV read), and otherwise
compiles the cell's mechanisms (:mod:`builder.core.mechanisms`) and runs this module as a
subprocess (``python -m builder.simulators.neuron.celltable REQUEST.json OUT.csv``), which

1. loads ``stdgui.hoc``, ``import3d.hoc`` and the compiled mechanisms, then the templates as
   BMTK's ``load_templates`` does: for a ``hoc:`` template every ``.hoc`` file of the template's
   folder (legacy projects keep e.g. ``L5PCbiophys3.hoc`` next to the template, which calls
   its procs), in ``glob`` order, with that folder as the working directory; for ``ctdb:``
   the template file;
2. changes to the working directory the build was started from and instantiates the cell as
   BMTK's ``loadHOC`` / ``Biophys1`` cell loaders do, then applies ``model_processing`` with
   BMTK's own ``aibs_perisomatic`` / ``aibs_allactive`` (axon stub replacement included);
3. sets ``nseg = 1 + 2*int(L/(2*dL))`` on every section of ``all`` (BMTK's ``set_segment_dl``);
4. writes one row per segment, in ``all`` order: section index, x, type, index within type,
   path distance from ``soma[0](0)``, segment centre coordinates, segment length and
   segment diameter (NEURON's ``seg.diam``).

The working directory matters for legacy templates that load their own morphology: they name
it relative to the directory the simulation is run from (Hay-style projects build and run from
``FullSimulation/`` with ``../biophys_components/morphologies/cell.asc``), so the cell is
instantiated in the build's working directory (``cwd``, default the process's).

Running NEURON in a child process keeps the builder free of NEURON's import cost and of
mechanism clashes. The cache key covers the template file and its sibling .hoc files, every
existing file a string literal in them names (relative to ``cwd`` or the template folder, so
editing a morphology a template opens by itself invalidates the table), the morphology, the
dynamics params, ``model_template``, ``model_processing``, ``dL``, the NMODL sources, the NEURON
version and :data:`FORMAT_VERSION`.

A hoc error while the cell is built (a morphology that cannot be opened or parsed, a missing
proc) comes back as one :class:`~builder.core.errors.ComponentError` naming the template and
NEURON's own error line.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...core.components import CellSpec
from ...core.errors import ComponentError
from ...core.mechanisms import (
    cache_root,
    compiled_mechanisms,
    file_lock,
    neuron_version,
    sources_digest,
)
from ...core.mpienv import without_launcher
from ...core.segments import SECTION_TYPES, SegmentTable

__all__ = [
    "segment_table",
    "cell_variables",
    "cached_segment_table_path",
    "segment_cache_key",
    "FORMAT_VERSION",
]

#: Bump when the derivation changes in a way that changes the table.
FORMAT_VERSION = 3  # 3: the Diam column
#: Suffix of the file cached next to a table: the cell's section groups and their variables.
VARIABLES_SUFFIX = ".vars.json"

_TAIL_LINES = 30
#: Prefix of the child's stderr line that carries a complete error message.
_REPORTED = "l5net-error: "


# ---------------------------------------------------------------------------- parent side
def _digest_file(h: hashlib._Hash, label: str, path: Path | None) -> None:
    h.update(label.encode() + b"\0")
    if path is None:
        h.update(b"-\0")
        return
    try:
        h.update(
            Path(path).name.encode() + b"\0" + hashlib.sha256(Path(path).read_bytes()).digest()
        )
    except OSError as exc:
        raise ComponentError(f"{path}: cannot read ({exc})") from None


#: A hoc string literal (no escapes inside), and the most a literal may hold to be a path.
_HOC_STRING = re.compile(rb'"([^"\\\n]{1,1000})"')


def _template_files(template_file: Path) -> list[Path]:
    """The template file and its sibling ``.hoc`` files (sorted), all loaded for ``hoc:``."""
    siblings = sorted(p for p in template_file.parent.glob("*.hoc") if p.is_file())
    return [template_file] + [p for p in siblings if p != template_file]


def referenced_files(template_file: Path, cwd: Path) -> list[tuple[str, str, Path]]:
    """Existing files the template and its sibling .hoc files name in string literals.

    A literal counts when it names a file relative to ``cwd``, to the template's folder, or
    absolutely (e.g. ``"../biophys_components/morphologies/cell.asc"``); directories and
    the ``.hoc`` files themselves are left out.

    Returns
    -------
    list of (literal, base, path)
        ``base`` is ``"cwd"``, ``"template"`` or ``"absolute"``: where the literal was found
        (a template opens files at run time relative to the working directory, but loads
        hoc files at load time relative to its own folder). Sorted by literal.
    """
    hoc_files = _template_files(template_file)
    found: dict[str, tuple[str, Path]] = {}
    for hoc in hoc_files:
        try:
            text = hoc.read_bytes()
        except OSError as exc:
            raise ComponentError(f"{hoc}: cannot read ({exc})") from None
        for m in _HOC_STRING.finditer(text):
            literal = m.group(1).decode("utf-8", "replace").strip()
            if not literal or literal in found or "%" in literal:
                continue
            name = Path(os.path.expanduser(literal))
            bases = (
                [("absolute", Path())]
                if name.is_absolute()
                else [("cwd", cwd), ("template", template_file.parent)]
            )
            for label, base in bases:
                path = base / name
                try:
                    hit = path.is_file() and path.resolve() not in hoc_files
                except OSError:
                    hit = False
                if hit:
                    found[literal] = (label, path.resolve())
                    break
    return [(literal, label, path) for literal, (label, path) in sorted(found.items())]


def segment_cache_key(spec: CellSpec, dL_um: float | None, *, cwd: Path | None = None) -> str:
    """The cache key of the segment table of ``spec`` discretised with ``dL_um`` (hex).

    ``cwd`` is the working directory the cell is built in (default: the process's); it only
    decides which files the template's string literals name.
    """
    cwd = Path.cwd() if cwd is None else Path(cwd)
    h = hashlib.sha256(f"segment-table-v{FORMAT_VERSION}\0".encode())
    h.update(f"{spec.model_template}\0{spec.model_processing}\0".encode())
    h.update(f"{'none' if dL_um is None else repr(float(dL_um))}\0".encode())
    _digest_file(h, "template", spec.template_file)
    if spec.template_file is not None:  # a template may load_file its siblings
        template = Path(spec.template_file)
        for sibling in _template_files(template)[1:]:
            _digest_file(h, "sibling", sibling)
        for literal, base, path in referenced_files(template, cwd):
            _digest_file(h, f"opened:{base}:{literal}", path)
    _digest_file(h, "morphology", spec.morphology)
    _digest_file(h, "dynamics", spec.dynamics_params)
    h.update(sources_digest(spec.mod_files).encode() + b"\0" if spec.mod_files else b"-\0")
    h.update(neuron_version().encode())
    return h.hexdigest()[:32]


def cached_segment_table_path(
    spec: CellSpec,
    dL_um: float | None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
) -> Path:
    """Where the derived table of ``spec`` at ``dL_um`` is (or will be) cached.

    The file exists only once :func:`segment_table` has derived it.
    """
    key = segment_cache_key(spec, dL_um, cwd=None if cwd is None else Path(cwd))
    return cache_root(cache_dir) / "segments" / f"{key}.csv"


def _child_env() -> dict[str, str]:
    env = without_launcher()
    env.pop("NRN_NMODL_PATH", None)  # mechanisms are loaded explicitly
    package_root = str(Path(__file__).resolve().parents[3])  # the folder holding builder/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def segment_table(
    spec: CellSpec,
    dL_um: float | None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
) -> SegmentTable:
    """The segment table (SPEC section 4) of the cell ``spec`` as BMTK BioNet discretises it.

    Parameters
    ----------
    spec : CellSpec
        The resolved cell (:func:`builder.core.components.resolve_cell`).
    dL_um : float or None
        Target segment length (the simulation's ``dL``); ``None`` keeps the template's nseg.
    cache_dir : path, optional
        Cache root (default: :func:`builder.core.mechanisms.cache_root`).
    cwd : path, optional
        The working directory the build was started from (default: the process's); the cell
        is instantiated there, as a template that opens files by relative paths expects.

    Returns
    -------
    SegmentTable

    Raises
    ------
    ComponentError
        If mechanisms do not compile or the cell cannot be instantiated (with NEURON's
        error output).
    """
    if dL_um is not None and not dL_um > 0:
        raise ComponentError(f"dL must be > 0 micrometres, got {dL_um!r}")
    if spec.template_file is None:
        raise ComponentError(f"{spec.model_template}: no template file to instantiate")
    cwd = Path.cwd() if cwd is None else Path(cwd).resolve()
    path = cached_segment_table_path(spec, dL_um, cache_dir=cache_dir, cwd=cwd)
    if path.is_file():
        return SegmentTable.from_csv(path)
    return _derive(spec, dL_um, path, cache_dir=cache_dir, cwd=cwd)


def cell_variables(
    spec: CellSpec,
    dL_um: float | None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """The cell's section groups and the range variables every section of each group has.

    Derived with the segment table, in the same NEURON child process, and cached next to it
    (:data:`VARIABLES_SUFFIX`); see :func:`builder.simulators.neuron.sections.group_variables`.

    Returns
    -------
    dict
        Group name (``soma``, ``dend``, ``apic``, ``axon``, ``all`` and the template's other
        section lists) -> ``{"n_sections": int, "variables": [str, ...]}``.
    """
    if spec.template_file is None:
        raise ComponentError(f"{spec.model_template}: no template file to instantiate")
    cwd = Path.cwd() if cwd is None else Path(cwd).resolve()
    path = cached_segment_table_path(spec, dL_um, cache_dir=cache_dir, cwd=cwd)
    side = path.with_name(path.stem + VARIABLES_SUFFIX)
    if not (path.is_file() and side.is_file()):
        _derive(spec, dL_um, path, cache_dir=cache_dir, cwd=cwd, force=True)
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ComponentError(f"{side}: cannot read the cell's variables ({exc})") from None


def _derive(
    spec: CellSpec,
    dL_um: float | None,
    path: Path,
    *,
    cache_dir: str | os.PathLike | None,
    cwd: Path,
    force: bool = False,
) -> SegmentTable:
    """Derive the table (and the variables beside it) in a NEURON child; cache both."""
    side = path.with_name(path.stem + VARIABLES_SUFFIX)
    mechanisms = (
        compiled_mechanisms(spec.mod_files, cache_dir=cache_dir) if spec.mod_files else None
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        if path.is_file() and (side.is_file() or not force):
            return SegmentTable.from_csv(path)
        with tempfile.TemporaryDirectory(prefix=".derive-", dir=path.parent) as tmp:
            request = {
                "model_template": spec.model_template,
                "model_processing": spec.model_processing,
                "template_file": str(spec.template_file),
                "morphology": None if spec.morphology is None else str(spec.morphology),
                "dynamics_params": (
                    None if spec.dynamics_params is None else str(spec.dynamics_params)
                ),
                "mechanisms_dir": None if mechanisms is None else str(mechanisms),
                "dL_um": dL_um,
                "cwd": str(cwd),
            }
            req_path = Path(tmp) / "request.json"
            out_path = Path(tmp) / "segments.csv"
            req_path.write_text(json.dumps(request, indent=1))
            try:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "builder.simulators.neuron.celltable",
                        str(req_path),
                        str(out_path),
                    ],
                    cwd=tmp,  # a clean directory: NEURON auto-loads ./<arch>/ mechanisms
                    env=_child_env(),
                    capture_output=True,
                    text=True,
                    errors="replace",
                    check=False,
                )
            except OSError as exc:
                raise ComponentError(f"cannot start {sys.executable} ({exc})") from None
            if proc.returncode != 0 or not out_path.is_file():
                output = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
                reported = [ln[len(_REPORTED) :] for ln in output if ln.startswith(_REPORTED)]
                if reported:  # the child's own one-line account of a hoc error
                    raise ComponentError(reported[-1])
                tail = "\n".join(output[-_TAIL_LINES:])
                if proc.returncode < 0:  # e.g. Import3d reading a malformed SWC can segfault
                    with_morph = f" with morphology {spec.morphology}" if spec.morphology else ""
                    raise ComponentError(
                        f"deriving the segment table of {spec.model_template} "
                        f"({spec.template_file}): NEURON crashed (signal {-proc.returncode}) "
                        f"while building the cell{with_morph}; its output:\n{tail}"
                    )
                raise ComponentError(
                    f"deriving the segment table of {spec.model_template} "
                    f"({spec.template_file}) with NEURON failed "
                    f"(exit status {proc.returncode}):\n{tail}"
                )
            table = SegmentTable.from_csv(out_path)
            out_vars = out_path.with_name(out_path.stem + VARIABLES_SUFFIX)
            if out_vars.is_file():
                os.replace(out_vars, side)
            os.replace(out_path, path)
    return table


# ---------------------------------------------------------------------------- child side
_SECTION_NAME = re.compile(r"^([A-Za-z_]\w*?)(?:\[(\d+)\])?$")


def _section_type(name: str) -> tuple[str, int]:
    """``'Biophys1[0].dend[12]'`` -> ``('dend', 12)``, BMTK's type rule (first four letters)."""
    leaf = name.split(".")[-1]
    m = _SECTION_NAME.match(leaf)
    if m is None:
        raise ComponentError(f"cannot parse the section name {name!r}")
    kind = m.group(1)[:4]
    if kind not in SECTION_TYPES:
        raise ComponentError(
            f"section {name!r} is of no known type; section names must start with one of "
            f"{', '.join(SECTION_TYPES)} (BMTK classifies sections by these names)"
        )
    return kind, int(m.group(2) or 0)


def _instantiate(h, req: dict):
    """Build the cell the way BMTK's cell loaders and processors do; return the hoc object."""
    kind, _, name = req["model_template"].partition(":")
    morphology = req["morphology"]
    dynamics = None
    if req["dynamics_params"] is not None:
        with open(req["dynamics_params"]) as f:
            dynamics = json.load(f)
    if kind == "ctdb":
        hobj = h.Biophys1(str(morphology))  # BMTK's Biophys1 loader
    else:  # BMTK's loadHOC: template(*params) | template(morphology) | template()
        template = getattr(h, name, None)
        if template is None:
            raise ComponentError(f"{req['template_file']} does not define template {name}")
        if dynamics is not None and "params" in dynamics:
            args = dynamics["params"]
            hobj = template(*args) if isinstance(args, list) else template(args)
        elif morphology is not None:
            hobj = template(str(morphology))
        else:
            hobj = template()
    if req["model_processing"]:
        from bmtk.simulator.bionet.default_setters import cell_models

        for proc_name in req["model_processing"].split(","):
            hobj = getattr(cell_models, proc_name.strip())(hobj, None, dynamics)
    return hobj


def _soma0(hobj):
    soma = hobj.soma
    try:
        return soma[0]
    except TypeError:  # a scalar section (``create soma``)
        return soma


class _HocError(ComponentError):
    """A hoc error while building the cell, already worded for the user."""


def _load_templates(h, template_file: Path, whole_folder: bool) -> None:
    """Load the template as BMTK's ``load_templates`` does (every .hoc of its folder)."""
    cwd = os.getcwd()
    os.chdir(template_file.parent)  # BMTK loads templates from inside their folder
    try:
        names = glob.glob("*.hoc") if whole_folder else [template_file.name]
        if template_file.name not in names:
            names.append(template_file.name)
        for name in names:
            if not h.load_file(name) and name == template_file.name:
                raise ComponentError(f"NEURON could not load {template_file}")
    finally:
        os.chdir(cwd)


class _stderr_to_file:
    """Send file descriptor 2 (where NEURON prints hoc errors) to a temporary file."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def read(self) -> str:
        sys.stderr.flush()
        self._file.flush()
        self._file.seek(0)
        return self._file.read().decode("utf-8", "replace")

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        text = self.read()
        self._file.close()
        if text:  # keep NEURON's full output visible in the child's stderr
            sys.stderr.write(text)
            sys.stderr.flush()


_PY_ERROR = re.compile(r"^(?:[\w.]+\.)?(?:ComponentError|[A-Z]\w*Error): (.+)$")


def _hoc_error_message(req: dict, output: str) -> str:
    """One line for a failed instantiation: the template, the morphology and NEURON's error."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    detail = None
    for ln in reversed(lines):  # an exception raised by our Python loader is the most specific
        m = _PY_ERROR.match(ln)
        if m and "hocobj_call" not in ln and "hoc error" not in ln:
            detail = m.group(1)
            break
    if detail is None:
        neuron_lines = [i for i, ln in enumerate(lines) if ln.startswith(("NEURON:", "nrniv:"))]
        if neuron_lines:
            i = neuron_lines[0]
            detail = lines[i].split(":", 1)[1].strip()
            near = next((ln for ln in lines[i + 1 : i + 3] if ln.startswith("near line")), None)
            code = lines[i + 2] if near is not None and i + 2 < len(lines) else "^"
            if near is not None and lines[i + 1] == near and code != "^":
                detail += f" (near line {near.split()[-1]}: {code})"
        elif lines:
            detail = lines[-1]
        else:
            detail = "hoc error without a message"
    what = f"{req['model_template']} ({req['template_file']})"
    if req.get("morphology"):
        what += f" with morphology {req['morphology']}"
    if req.get("cwd"):
        what += f", working directory {req['cwd']}"
    return f"deriving the segment table of {what}: NEURON could not build the cell: {detail}"


def derive(req: dict, variables: dict | None = None) -> SegmentTable:
    """Instantiate the cell described by ``req`` in this process and tabulate its segments.

    Imports NEURON (and BMTK when ``model_processing`` is set); meant for the child process.
    ``variables``, when given, receives the cell's section groups and their range variables
    (:func:`builder.simulators.neuron.sections.group_variables`).
    """
    import neuron
    from neuron import h

    h.load_file("stdgui.hoc")
    h.load_file("import3d.hoc")
    if req["mechanisms_dir"] is not None and not neuron.load_mechanisms(
        req["mechanisms_dir"], warn_if_already_loaded=False
    ):
        raise ComponentError(f"no compiled mechanisms in {req['mechanisms_dir']}")
    template_file = Path(req["template_file"])
    _load_templates(h, template_file, req["model_template"].startswith("hoc:"))
    cwd = req.get("cwd")
    if cwd is not None and Path(cwd).is_dir():
        os.chdir(cwd)  # where the build (and the legacy run) is started from
    with _stderr_to_file() as captured:
        try:
            hobj = _instantiate(h, req)
        except RuntimeError:
            raise _HocError(_hoc_error_message(req, captured.read())) from None

    sections = list(hobj.all)
    if not sections:
        raise ComponentError(f"{req['model_template']}: the cell's 'all' section list is empty")
    if req["dL_um"] is not None:  # BMTK's Morphology.set_segment_dl
        dl = float(req["dL_um"])
        for sec in sections:
            sec.nseg = 1 + 2 * int(sec.L / (2 * dl))
    if any(sec.n3d() == 0 for sec in sections):
        h.define_shape()  # sections built without 3-D points get them as NEURON draws them

    if variables is not None:
        from .sections import group_variables

        variables.update(group_variables(hobj))
    h.distance(0, 0.0, sec=_soma0(hobj))  # origin soma[0](0), as BMTK's seg_props
    ids, xs, types, type_idx, dist, length, diam, xyz = [], [], [], [], [], [], [], []
    for sec_id, sec in enumerate(sections):
        kind, index = _section_type(sec.name())
        nseg = sec.nseg
        x = np.array([seg.x for seg in sec])
        n3d = int(sec.n3d())
        if n3d == 0:
            raise ComponentError(f"section {sec.name()} has no 3-D points")
        arc = np.array([sec.arc3d(i) for i in range(n3d)]) / sec.L
        pts = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(n3d)])
        xyz.append(np.column_stack([np.interp(x, arc, pts[:, k]) for k in range(3)]))
        ids.append(np.full(nseg, sec_id))
        xs.append(x)
        types += [kind] * nseg
        type_idx.append(np.full(nseg, index))
        dist.append(np.array([h.distance(seg) for seg in sec]))
        length.append(np.full(nseg, sec.L / nseg))
        diam.append(np.array([seg.diam for seg in sec]))
    return SegmentTable(
        bmtk_id=np.concatenate(ids).astype(np.int64),
        x=np.concatenate(xs),
        type=np.array(types, dtype="U8"),
        type_index=np.concatenate(type_idx).astype(np.int64),
        distance_um=np.concatenate(dist),
        xyz_um=np.concatenate(xyz),
        length_um=np.concatenate(length),
        diam_um=np.concatenate(diam),
    )


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m builder.simulators.neuron.celltable REQUEST.json OUT.csv``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m builder.simulators.neuron.celltable REQUEST.json OUT.csv",
            file=sys.stderr,
        )
        return 2
    request, out = Path(args[0]).resolve(), Path(args[1]).resolve()
    try:
        req = json.loads(request.read_text())
        variables: dict = {}
        table = derive(req, variables)
        out.with_name(out.stem + VARIABLES_SUFFIX).write_text(json.dumps(variables, indent=1))
        table.to_csv(out)
    except _HocError as exc:
        print(f"{_REPORTED}{exc}", file=sys.stderr)
        return 1
    except ComponentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
