"""Build hook: ship the repository's top-level data folders inside the ``builder`` package.

Everything else about the package is declared in ``pyproject.toml``. The repository keeps
``biophys_components/`` and ``params/`` at the top level (where users look for them); a wheel
can only install files inside a package, so ``build_py`` copies those folders to
``<build>/builder/_data/<folder>/``, where :func:`builder.core.data.project_data_dir` finds them. An
editable install needs no copy (the package finds the folders beside it). A source tree without
the folders (e.g. an sdist made without ``MANIFEST.in``) fails the build instead of producing a
wheel that cannot build the default network.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("biophys_components", "params")  # = builder.core.data.DATA_FOLDERS
# compiled NMODL, caches and editor files never belong in the wheel
IGNORE = shutil.ignore_patterns(
    "x86_64", "aarch64", "arm64", "i686", "__pycache__", "*.pyc", "*.o", "*.so", ".*"
)


class BuildPyWithData(build_py):
    """``build_py`` that also copies the data folders into ``builder/_data``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target_root = Path(self.build_lib) / "builder" / "_data"
        for name in DATA_FOLDERS:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: data folder {source} is missing; cannot build")
            target = target_root / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=IGNORE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if getattr(self, "editable_mode", False):
            return outputs
        target_root = Path(self.build_lib) / "builder" / "_data"
        return outputs + sorted(str(p) for p in target_root.rglob("*") if p.is_file())


setup(cmdclass={"build_py": BuildPyWithData})
