"""Find where a cell's components live: template, morphology, dynamics params and NMODL files.

A params file names its cell the way BMTK does (``model_template``, ``morphology``,
``dynamic_params``, ``model_processing``) plus a legacy ``prefix`` that selects one of several
component sets inside a components directory. :func:`resolve_cell` turns those names into
absolute paths, searching the cell's components directory first and the component folders BMTK
ships with its package second. Nothing here imports NEURON or BMTK, and nothing on disk is ever
renamed, moved or written.

Components directory
    ``cell.components_dir`` when given (relative to the params file); otherwise, as the legacy
    code did, ``<cwd>/../biophys_components`` if it exists; otherwise the project's own
    ``biophys_components``.

Prefix convention (templates and mechanisms only)
    Candidate folders for kind ``K`` are those named ``K`` or ending in ``K`` (``L5templates``,
    ``L2-3mechanisms``). The one whose ``prefix.txt`` holds ``cell.prefix`` wins; else the folder
    named ``<prefix>K``; else the plain ``K`` unless its ``prefix.txt`` names another prefix.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .data import project_data_dir
from .errors import ComponentError

__all__ = [
    "CellSpec",
    "resolve_cell",
    "synaptic_model_path",
    "project_components_dir",
    "bmtk_components_dir",
    "mechanism_names",
    "check_unique_mechanisms",
    "prefixed_folder",
    "MODEL_PROCESSING",
]

#: ``model_processing`` values whose effect we reproduce (BMTK's Allen Cell Types processors).
MODEL_PROCESSING = ("aibs_perisomatic", "aibs_allactive")

_KINDS = ("templates", "mechanisms")


@dataclass(frozen=True)
class CellSpec:
    """Where every component of one biophysical cell lives (all paths absolute).

    Attributes
    ----------
    model_template : str
        SONATA ``model_template``, e.g. ``"hoc:L5PCtemplate"`` or ``"ctdb:Biophys1.hoc"``.
    model_processing : str or None
        ``None``, ``"aibs_perisomatic"`` or ``"aibs_allactive"``.
    template_file : Path or None
        The ``.hoc`` file that defines the template.
    morphology : Path or None
        Morphology file, or ``None`` when the template builds or loads its own.
    dynamics_params : Path or None
        The cell's dynamics params JSON (e.g. an Allen ``_fit.json``), or ``None``.
    mod_files : tuple of Path
        Every NMODL file the cell and the project's synapses need, sorted.
    components_dir : Path or None
        The components directory the cell was resolved in.
    """

    model_template: str
    model_processing: str | None
    template_file: Path | None
    morphology: Path | None
    dynamics_params: Path | None
    mod_files: tuple[Path, ...]
    components_dir: Path | None

    @property
    def template_name(self) -> str:
        """The part of ``model_template`` after the directive (``L5PCtemplate``)."""
        return self.model_template.split(":", 1)[1]

    @property
    def directive(self) -> str:
        """The part of ``model_template`` before the colon (``hoc`` or ``ctdb``)."""
        return self.model_template.split(":", 1)[0]


# ---------------------------------------------------------------------------- locations
def project_components_dir() -> Path:
    """The project's own ``biophys_components``: the checkout's, or the installed wheel's copy."""
    return project_data_dir("biophys_components")


def bmtk_components_dir() -> Path:
    """The component folders BMTK ships (``<bmtk>/utils/scripts/bionet``), found without importing.

    Raises
    ------
    ComponentError
        If BMTK is not installed.
    """
    found = _bmtk_components_dir()
    if found is None:
        raise ComponentError(
            "BMTK is not installed, so its shipped components (templates, morphologies, "
            "Allen fits, channel NMODL) are unavailable; install the 'sim' extra"
        )
    return found


def _bmtk_components_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("bmtk")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "scripts" / "bionet"
    return path if path.is_dir() else None


# ---------------------------------------------------------------------------- resolution
class _Context:
    """The params-derived facts every lookup needs (for paths and for error messages)."""

    def __init__(self, params: dict, cwd: Path | None):
        self.cell = params.get("cell") or {}
        source = params.get("_source")
        self.source = str(source) if source else "params"
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.params_dir = Path(source).resolve().parent if source else self.cwd
        self.prefix = self.cell.get("prefix")
        self.components_dir = self._components_dir()
        self.bmtk = _bmtk_components_dir()
        project = project_components_dir()
        self.project = project if project.is_dir() else None

    def fail(self, key: str, value: object, problem: str, looked: Iterable[Path] = ()) -> NoReturn:
        places = [str(p) for p in looked]
        where = f"; looked in: {', '.join(places)}" if places else ""
        raise ComponentError(f"{self.source}: {key} = {value!r}: {problem}{where}")

    def _components_dir(self) -> Path | None:
        given = self.cell.get("components_dir")
        if given is not None:
            path = Path(os.path.expanduser(str(given)))
            if not path.is_absolute():
                path = self.params_dir / path
            path = path.resolve()
            if not path.is_dir():
                self.fail("cell.components_dir", given, "no such directory", [path])
            return path
        legacy = (self.cwd / ".." / "biophys_components").resolve()
        if legacy.is_dir():
            return legacy
        project = project_components_dir()
        return project if project.is_dir() else None


def _read_prefix(folder: Path) -> str | None:
    try:
        return (folder / "prefix.txt").read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComponentError(f"{folder / 'prefix.txt'}: cannot read ({exc})") from None


def prefixed_folder(components_dir: Path, kind: str, prefix: str | None) -> Path | None:
    """The ``kind`` folder of ``components_dir`` that belongs to ``prefix`` (or ``None``).

    Parameters
    ----------
    components_dir : Path
        A components directory.
    kind : str
        ``"templates"`` or ``"mechanisms"``.
    prefix : str or None
        The params' ``cell.prefix``.

    Raises
    ------
    ComponentError
        If two folders' ``prefix.txt`` both claim ``prefix``.
    """
    try:
        candidates = sorted(
            p for p in components_dir.iterdir() if p.is_dir() and p.name.endswith(kind)
        )
    except OSError:
        return None
    plain = components_dir / kind
    if prefix is None:
        return plain if plain.is_dir() else None
    claimed = [p for p in candidates if _read_prefix(p) == str(prefix)]
    if len(claimed) > 1:
        names = ", ".join(str(p / "prefix.txt") for p in claimed)
        raise ComponentError(f"cell.prefix = {prefix!r} is claimed by several folders: {names}")
    if claimed:
        return claimed[0]
    named = components_dir / f"{prefix}{kind}"
    if named.is_dir():
        return named
    if plain.is_dir() and _read_prefix(plain) is None:
        return plain
    return None


def _existing(paths: Iterable[Path | None]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p is not None and p.is_dir() and p not in out:
            out.append(p)
    return out


def _template_dirs(ctx: _Context) -> list[Path]:
    own = (
        prefixed_folder(ctx.components_dir, "templates", ctx.prefix) if ctx.components_dir else None
    )
    return _existing([own, ctx.bmtk / "templates" if ctx.bmtk else None])


def _find_template(ctx: _Context, model_template: str) -> Path:
    dirs = _template_dirs(ctx)
    directive, _, name = model_template.partition(":")
    if directive == "ctdb":
        filename = name if name.endswith(".hoc") else f"{name}.hoc"
        for d in dirs:
            if (d / filename).is_file():
                return (d / filename).resolve()
        ctx.fail("cell.model_template", model_template, f"no file {filename}", dirs)
    pattern = re.compile(rb"^\s*begintemplate\s+" + re.escape(name.encode()) + rb"\b", re.M)
    for d in dirs:
        hits = [
            f for f in sorted(d.glob("*.hoc")) if f.is_file() and pattern.search(f.read_bytes())
        ]
        if len(hits) > 1:
            ctx.fail(
                "cell.model_template",
                model_template,
                f"template {name} is defined by several files: {', '.join(map(str, hits))}",
            )
        if hits:
            return hits[0].resolve()
    ctx.fail(
        "cell.model_template",
        model_template,
        f"no .hoc file containing 'begintemplate {name}'",
        dirs,
    )


def _find_file(ctx: _Context, key: str, value: str, folder: str) -> Path:
    path = Path(os.path.expanduser(str(value)))
    if path.is_absolute():
        if path.is_file():
            return path.resolve()
        ctx.fail(key, value, "no such file", [path])
    dirs = [ctx.components_dir / folder if ctx.components_dir else None]
    dirs.append(ctx.bmtk / folder if ctx.bmtk else None)
    looked = [d for d in dirs if d is not None]
    names = [path]
    if not path.suffix and folder == "morphologies":
        names.append(path.with_suffix(".swc"))  # SONATA allows the extension to be left off
    for d in _existing(dirs):
        for n in names:
            if (d / n).is_file():
                return (d / n).resolve()
    ctx.fail(key, value, "file not found", looked)


# ---------------------------------------------------------------------------- NMODL
_COMMENT_BLOCK = re.compile(rb"^\s*COMMENT\b.*?^\s*ENDCOMMENT\b", re.M | re.S)
_LINE_COMMENT = re.compile(rb":.*$", re.M)
_NEURON_BLOCK = re.compile(rb"\bNEURON\s*\{(.*?)\}", re.S)
_NAME_DECL = re.compile(rb"\b(SUFFIX|POINT_PROCESS|ARTIFICIAL_CELL)\s+([A-Za-z_]\w*)")


def mechanism_names(mod_file: Path) -> list[str]:
    """Names a .mod file defines (its ``SUFFIX``, ``POINT_PROCESS`` or ``ARTIFICIAL_CELL``)."""
    try:
        text = Path(mod_file).read_bytes()
    except OSError as exc:
        raise ComponentError(f"{mod_file}: cannot read NMODL file ({exc})") from None
    text = _LINE_COMMENT.sub(b"", _COMMENT_BLOCK.sub(b"", text))
    names = []
    for block in _NEURON_BLOCK.findall(text):
        names += [m.group(2).decode() for m in _NAME_DECL.finditer(block)]
    return names


def _mods_in(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    found = list(folder.glob("*.mod")) + list((folder / "modfiles").glob("*.mod"))
    return sorted(p.resolve() for p in found if p.is_file())


def _mod_files(ctx: _Context) -> tuple[Path, ...]:
    """The user's mechanisms over the project's over BMTK's, overriding by file name."""
    layers: list[Path | None] = []
    if ctx.components_dir is not None:
        layers.append(prefixed_folder(ctx.components_dir, "mechanisms", ctx.prefix))
    if ctx.project is not None and ctx.project != ctx.components_dir:
        # the project's own synapse models must be compiled whatever the cell's components are
        layers.append(prefixed_folder(ctx.project, "mechanisms", None))
    layers.append(ctx.bmtk / "mechanisms" if ctx.bmtk else None)
    by_name: dict[str, Path] = {}
    for folder in layers:
        for mod in _mods_in(folder):
            by_name.setdefault(mod.name, mod)
    mods = sorted(by_name.values())
    check_unique_mechanisms(mods)
    return tuple(mods)


def check_unique_mechanisms(mod_files: Sequence[Path]) -> None:
    """Raise if two files define the same mechanism name or share a file name.

    Raises
    ------
    ComponentError
        Naming the mechanism and both files.
    """
    seen: dict[str, Path] = {}
    files: dict[str, Path] = {}
    for mod in mod_files:
        mod = Path(mod)
        if mod.name in files and files[mod.name] != mod:
            raise ComponentError(
                f"two NMODL files share the name {mod.name}: {files[mod.name]} and {mod}"
            )
        files[mod.name] = mod
        for name in mechanism_names(mod):
            if name in seen and seen[name] != mod:
                raise ComponentError(
                    f"mechanism {name!r} is defined twice: in {seen[name]} and in {mod}; "
                    "remove or rename one of them"
                )
            seen[name] = mod


# ---------------------------------------------------------------------------- public API
def resolve_cell(params: dict, *, cwd: Path | None = None) -> CellSpec:
    """Resolve the params' ``cell`` block into absolute component paths.

    Parameters
    ----------
    params : dict
        The normalised params (legacy keys, ``"None"`` already turned into ``None``,
        ``params["_source"]`` the absolute params file path).
    cwd : Path, optional
        The working directory the legacy ``../biophys_components`` rule is relative to
        (default: the process's).

    Returns
    -------
    CellSpec

    Raises
    ------
    ComponentError
        When anything is missing or ambiguous; the message names the params key, its value
        and every place looked.
    """
    ctx = _Context(params, cwd)
    cell = ctx.cell
    model_template = cell.get("model_template")
    if not isinstance(model_template, str) or ":" not in model_template:
        ctx.fail(
            "cell.model_template",
            model_template,
            "expected 'hoc:<TemplateName>' or 'ctdb:Biophys1.hoc'",
        )
    directive, _, name = model_template.partition(":")
    if directive not in ("hoc", "ctdb") or not name:
        ctx.fail(
            "cell.model_template",
            model_template,
            "expected 'hoc:<TemplateName>' or 'ctdb:Biophys1.hoc'",
        )
    processing = cell.get("model_processing")
    if processing is not None and processing not in MODEL_PROCESSING:
        ctx.fail(
            "cell.model_processing",
            processing,
            f"valid values: None, {', '.join(MODEL_PROCESSING)}",
        )

    template_file = _find_template(ctx, model_template)

    morph_value = cell.get("morphology")
    morphology = None
    if morph_value is not None:
        morphology = _find_file(ctx, "cell.morphology", morph_value, "morphologies")
    elif directive == "ctdb":
        ctx.fail("cell.morphology", None, f"{model_template} needs a morphology file")

    dyn_key = "cell.dynamic_params" if "dynamic_params" in cell else "cell.dynamics_params"
    dyn_value = cell.get("dynamic_params", cell.get("dynamics_params"))
    dynamics = None
    if dyn_value is not None:
        dynamics = _find_file(ctx, dyn_key, dyn_value, "biophysical_neuron_models")
    elif processing == "aibs_allactive":
        ctx.fail(dyn_key, None, "model_processing 'aibs_allactive' needs a dynamics params file")

    return CellSpec(
        model_template=model_template,
        model_processing=processing,
        template_file=template_file,
        morphology=morphology,
        dynamics_params=dynamics,
        mod_files=_mod_files(ctx),
        components_dir=ctx.components_dir,
    )


def synaptic_model_path(params: dict, name: str, *, cwd: Path | None = None) -> Path:
    """Absolute path of a synapse model JSON (``"PN2PN.json"``).

    Looked up in the cell's components ``synaptic_models`` folder, then the project's.

    Raises
    ------
    ComponentError
        If the file is in neither.
    """
    ctx = _Context(params, cwd)
    dirs = [ctx.components_dir, ctx.project]
    looked = []
    for d in dirs:
        if d is None or d / "synaptic_models" in looked:
            continue
        looked.append(d / "synaptic_models")
        if (d / "synaptic_models" / name).is_file():
            return (d / "synaptic_models" / name).resolve()
    ctx.fail("synaptic model", name, "file not found", looked)
