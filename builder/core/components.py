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
from .morphology import morphology_format

__all__ = [
    "CellSpec",
    "resolve_cell",
    "synaptic_model_path",
    "project_components_dir",
    "bmtk_components_dir",
    "mechanism_names",
    "check_unique_mechanisms",
    "known_prefixes",
    "prefixed_folder",
    "provided_mod_files",
    "select_mechanisms",
    "MechanismSet",
    "KINDS",
    "PROVIDED_MECHANISMS",
    "MODEL_PROCESSING",
]

#: ``model_processing`` values whose effect we reproduce (BMTK's Allen Cell Types processors).
MODEL_PROCESSING = ("aibs_perisomatic", "aibs_allactive")

#: Component kinds (folder names of a components directory) the prefix convention applies to.
KINDS = (
    "templates",
    "mechanisms",
    "morphologies",
    "biophysical_neuron_models",
    "synaptic_models",
)


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
    notes : tuple of str
        Decisions the user should hear about once (e.g. a user mechanism replaced by ours).
    """

    model_template: str
    model_processing: str | None
    template_file: Path | None
    morphology: Path | None
    dynamics_params: Path | None
    mod_files: tuple[Path, ...]
    components_dir: Path | None
    notes: tuple[str, ...] = ()

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
        self._check_prefix()
        self.bmtk = _bmtk_components_dir()
        project = project_components_dir()
        self.project = project if project.is_dir() else None

    def fail(self, key: str, value: object, problem: str, looked: Iterable[Path] = ()) -> NoReturn:
        places = [str(p) for p in looked]
        where = f"; looked in: {', '.join(places)}" if places else ""
        raise ComponentError(f"{self.source}: {key} = {value!r}: {problem}{where}")

    def folder(self, kind: str) -> Path | None:
        """The components directory's ``kind`` folder for the cell's prefix (or ``None``)."""
        if self.components_dir is None:
            return None
        return prefixed_folder(self.components_dir, kind, self.prefix)

    def _check_prefix(self) -> None:
        """A prefix the components directory has no set for is an error (a typo, not a choice).

        Without this, a misspelt prefix would silently fall back to BMTK's components.
        """
        if self.prefix is None or self.components_dir is None:
            return
        known = known_prefixes(self.components_dir)
        if known and str(self.prefix) not in known:
            self.fail(
                "cell.prefix",
                self.prefix,
                f"{self.components_dir} holds component sets for "
                f"{', '.join(repr(k) for k in known)} only",
            )

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


def _component_folders(components_dir: Path, kind: str) -> list[Path]:
    """Folders of ``components_dir`` that hold ``kind`` components (``K`` or ``<prefix>K``)."""
    try:
        return sorted(p for p in components_dir.iterdir() if p.is_dir() and p.name.endswith(kind))
    except OSError:
        return []


def known_prefixes(components_dir: Path, kinds: Sequence[str] = KINDS) -> list[str]:
    """Every prefix a legacy components directory holds a component set for.

    A prefix is known when a ``K`` folder's ``prefix.txt`` names it or a folder is named
    ``<prefix>K``, for any component kind ``K``.
    """
    found: set[str] = set()
    for kind in kinds:
        for folder in _component_folders(components_dir, kind):
            claimed = _read_prefix(folder)
            if claimed:
                found.add(claimed)
            if folder.name != kind:
                found.add(folder.name[: -len(kind)])
    return sorted(found)


def prefixed_folder(components_dir: Path, kind: str, prefix: str | None) -> Path | None:
    """The ``kind`` folder of ``components_dir`` that belongs to ``prefix`` (or ``None``).

    The legacy convention: the plain folder ``K`` holds the active set and its ``prefix.txt``
    names the prefix of that set; ``<prefix>K`` folders hold stored sets (the legacy code
    renamed folders to swap sets; we use them in place). So, in order:

    1. the plain ``K`` whose ``prefix.txt`` names ``prefix`` (the active set: users edit it,
       so it wins over a stored copy ``<prefix>K`` of the same set);
    2. the folder named ``<prefix>K``;
    3. the one other ``*K`` folder whose ``prefix.txt`` names ``prefix``;
    4. the plain ``K`` when it has no ``prefix.txt`` (it serves any prefix).

    Parameters
    ----------
    components_dir : Path
        A components directory.
    kind : str
        A component kind (:data:`KINDS`), e.g. ``"templates"`` or ``"mechanisms"``.
    prefix : str or None
        The params' ``cell.prefix``; ``None`` selects the plain folder.

    Raises
    ------
    ComponentError
        If no folder of rule 1 or 2 exists and several others claim ``prefix``.
    """
    plain = components_dir / kind
    plain_prefix = _read_prefix(plain) if plain.is_dir() else None
    if prefix is None:
        return plain if plain.is_dir() else None
    prefix = str(prefix)
    if plain.is_dir() and plain_prefix == prefix:
        return plain
    named = components_dir / f"{prefix}{kind}"
    if named.is_dir():
        return named
    claimed = [
        p
        for p in _component_folders(components_dir, kind)
        if p != plain and _read_prefix(p) == prefix
    ]
    if len(claimed) > 1:
        names = ", ".join(str(p / "prefix.txt") for p in claimed)
        raise ComponentError(
            f"cell.prefix = {prefix!r}: several {kind} folders claim it ({names}) and none is "
            f"named {kind} or {prefix}{kind}; rename or remove all but one"
        )
    if claimed:
        return claimed[0]
    if plain.is_dir() and plain_prefix is None:
        return plain
    return None


def _existing(paths: Iterable[Path | None]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p is not None and p.is_dir() and p not in out:
            out.append(p)
    return out


def _template_dirs(ctx: _Context) -> list[Path]:
    return _existing([ctx.folder("templates"), ctx.bmtk / "templates" if ctx.bmtk else None])


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
    dirs = [ctx.folder(folder), ctx.bmtk / folder if ctx.bmtk else None]
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


#: Mechanisms this project provides and always uses (our synapse models; BMTK's VecStim,
#: which our bulk spike inputs drive). A user file defining one of them is left out.
PROVIDED_MECHANISMS = ("pyr2pyr", "int2pyr", "VecStim")


@dataclass(frozen=True)
class MechanismSet:
    """The NMODL files to compile together, and what was decided on the way.

    Attributes
    ----------
    mod_files : tuple of Path
        Sorted, absolute; no two define the same mechanism or share a file name.
    notes : tuple of str
        One line per user file left out because it defines a mechanism we provide.
    """

    mod_files: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def _digest(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ComponentError(f"{path}: cannot read NMODL file ({exc})") from None


def select_mechanisms(
    user: Sequence[Path], ours: Sequence[Path], fallback: Sequence[Path] = ()
) -> MechanismSet:
    """Merge the user's, our own and fallback (BMTK's) NMODL files into one compilable set.

    Parameters
    ----------
    user : sequence of Path
        The cell's own mechanisms (a legacy project's ``mechanisms`` folder). A file that
        defines a mechanism of ``ours`` (e.g. a legacy ``pyr2pyr.mod``, whose random-number
        code does not build on NEURON 9) is left out, with a note, unless it is byte-identical
        to ours. Two user files defining one mechanism are an error.
    ours : sequence of Path
        The mechanisms this project provides (:data:`PROVIDED_MECHANISMS`); always compiled.
    fallback : sequence of Path
        Used only where neither of the others defines the same mechanism or file name
        (BMTK's shipped channels: a user's ``Ca_HVA.mod`` replaces BMTK's).

    Returns
    -------
    MechanismSet

    Raises
    ------
    ComponentError
        If a mechanism is still defined twice (naming both files).
    """
    ours = [Path(p) for p in ours]
    our_names = {name: mod for mod in ours for name in mechanism_names(mod)}
    our_texts = {_digest(mod) for mod in ours}
    kept: list[Path] = []
    notes: list[str] = []
    for mod in map(Path, user):
        clash = [n for n in mechanism_names(mod) if n in our_names]
        if not clash:
            kept.append(mod)
        elif _digest(mod) not in our_texts:
            provided = ", ".join(f"{n} ({our_names[n]})" for n in clash)
            notes.append(
                f"{mod} defines {', '.join(clash)}, which l5net provides: using ours, "
                f"{provided}; this file is not compiled"
            )
    chosen = kept + [m for m in ours if m.name not in {k.name for k in kept}]
    taken_names = {n for mod in chosen for n in mechanism_names(mod)}
    taken_files = {mod.name for mod in chosen}
    for mod in map(Path, fallback):
        if mod.name in taken_files or taken_names & set(mechanism_names(mod)):
            continue
        chosen.append(mod)
        taken_files.add(mod.name)
        taken_names.update(mechanism_names(mod))
    mods = sorted(dict.fromkeys(chosen))
    check_unique_mechanisms(mods)
    return MechanismSet(tuple(mods), tuple(notes))


def _project_mod_files() -> list[Path]:
    project = project_components_dir()
    return _mods_in(prefixed_folder(project, "mechanisms", None) if project.is_dir() else None)


def _provides(mod: Path) -> bool:
    return bool(set(mechanism_names(mod)) & set(PROVIDED_MECHANISMS))


def provided_mod_files() -> list[Path]:
    """The NMODL files of :data:`PROVIDED_MECHANISMS`: our synapse models and BMTK's VecStim."""
    bmtk = _bmtk_components_dir()
    shipped = _mods_in(bmtk / "mechanisms" if bmtk else None)
    return [m for m in _project_mod_files() + shipped if _provides(m)]


def _mod_files(ctx: _Context, template_file: Path) -> MechanismSet:
    """The cell's own mechanisms, ours (always), then BMTK's channels as fallback.

    The cell's own mechanisms are its components directory's ``mechanisms`` folder (a legacy
    project's own; for the default cell the project's: our Hay channels next to our synapses).
    Only the mechanisms we provide override them; they override BMTK's files of the same
    mechanism or file name (our ``Ih``, ``Im``, ``Ca_HVA`` replace BMTK's). The project's
    channels serve the project's own templates only: a BMTK template on the project's
    components (the Allen ``Biophys1.hoc`` of ``params/L2-3NetParams.json``) and a cell whose
    components directory has no such files (the BMTK-channel option
    ``biophys_components/bmtk_channels``) get BMTK's.
    """
    own = ctx.folder("mechanisms")
    user = _mods_in(own)
    project = ctx.project
    if project is not None and own is not None and own.resolve() == _plain(project, "mechanisms"):
        if Path(template_file).resolve().parent != _plain(project, "templates"):
            user = []  # a BMTK template on the project's components: BMTK's channels
    fallback = _mods_in(ctx.bmtk / "mechanisms" if ctx.bmtk else None)
    return select_mechanisms(user, provided_mod_files(), fallback)


def _plain(components_dir: Path, kind: str) -> Path | None:
    folder = prefixed_folder(components_dir, kind, None)
    return folder.resolve() if folder is not None else None


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
    mechs = _mod_files(ctx, template_file)

    morph_value = cell.get("morphology")
    morphology = None
    if morph_value is not None:
        morphology = _find_file(ctx, "cell.morphology", morph_value, "morphologies")
        try:
            morph_format = morphology_format(morphology)
        except ComponentError as exc:
            ctx.fail("cell.morphology", morph_value, str(exc))
        if directive == "ctdb" and morph_format != "swc":
            ctx.fail(
                "cell.morphology",
                morph_value,
                f"{morphology} is {morph_format.upper()}, but {model_template} (BMTK's Allen "
                "loader) reads SWC only; convert it to SWC or use a hoc: template that loads "
                "any format (e.g. hoc:L5PCtemplate)",
            )
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
        mod_files=mechs.mod_files,
        components_dir=ctx.components_dir,
        notes=mechs.notes,
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
    project = prefixed_folder(ctx.project, "synaptic_models", None) if ctx.project else None
    looked = list(dict.fromkeys(d for d in (ctx.folder("synaptic_models"), project) if d))
    for d in looked:
        if (d / name).is_file():
            return (d / name).resolve()
    ctx.fail("synaptic model", name, "file not found", looked)
