"""Safe output: staging, manifest, refusal to touch foreign files, --force."""

from __future__ import annotations

import os

import pytest

from builder.core.errors import OutputError
from builder.core.output import MANIFEST_NAME, Staging, read_manifest


def _build(outdir, files, force=False):
    with Staging(outdir, force=force) as s:
        for rel, text in files.items():
            s.path(rel).write_text(text)
        return s.commit()


def test_commit_places_files_and_manifest(tmp_path):
    written = _build(tmp_path, {"a.txt": "1", "network/b.h5": "2"})
    assert written == ["a.txt", "network/b.h5"]
    assert (tmp_path / "a.txt").read_text() == "1"
    assert set(read_manifest(tmp_path)) == {"a.txt", "network/b.h5"}
    # no staging directory left behind
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".l5net-staging")] == []


def test_rebuild_replaces_own_files_and_drops_stale_ones(tmp_path):
    _build(tmp_path, {"a.txt": "1", "old.txt": "x", "network/b.h5": "2"})
    _build(tmp_path, {"a.txt": "one", "network/b.h5": "two"})
    assert (tmp_path / "a.txt").read_text() == "one"
    assert not (tmp_path / "old.txt").exists()
    assert set(read_manifest(tmp_path)) == {"a.txt", "network/b.h5"}


def test_foreign_file_is_never_overwritten(tmp_path):
    (tmp_path / "a.txt").write_text("user data")
    (tmp_path / "notes.md").write_text("keep me")
    with pytest.raises(OutputError, match="refusing to overwrite 1 file") as err:
        _build(tmp_path, {"a.txt": "1", "b.txt": "2"})
    assert "a.txt" in str(err.value) and "--force" in str(err.value)
    assert (tmp_path / "a.txt").read_text() == "user data"
    assert not (tmp_path / "b.txt").exists()  # nothing partial
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_modified_own_file_counts_as_foreign(tmp_path):
    _build(tmp_path, {"a.txt": "1"})
    (tmp_path / "a.txt").write_text("edited by the user, longer")
    with pytest.raises(OutputError):
        _build(tmp_path, {"a.txt": "2"})
    assert (tmp_path / "a.txt").read_text() == "edited by the user, longer"


def test_force_overwrites_but_leaves_unrelated_files(tmp_path):
    (tmp_path / "a.txt").write_text("user data")
    (tmp_path / "notes.md").write_text("keep me")
    _build(tmp_path, {"a.txt": "1"}, force=True)
    assert (tmp_path / "a.txt").read_text() == "1"
    assert (tmp_path / "notes.md").read_text() == "keep me"


def test_failure_before_commit_leaves_previous_output(tmp_path):
    _build(tmp_path, {"a.txt": "1"})
    with pytest.raises(RuntimeError):
        with Staging(tmp_path) as s:
            s.path("a.txt").write_text("2")
            raise RuntimeError("boom")
    assert (tmp_path / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".l5net-staging")] == []


def test_unreadable_manifest(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(OutputError, match="manifest is unreadable"):
        Staging(tmp_path)


def test_output_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OutputError, match="not a directory"):
        Staging(f)


def test_new_output_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "runs" / "7"
    with pytest.raises(RuntimeError):
        with Staging(target) as s:
            s.path("a.txt").write_text("1")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # not even runs/ was created
    _build(target, {"a.txt": "1", "network/b.h5": "2"})
    assert (target / "network/b.h5").read_text() == "2"
    assert set(read_manifest(target)) == {"a.txt", "network/b.h5"}
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    _build(target, {"a.txt": "one"})  # and a rebuild over it works as before
    assert set(read_manifest(target)) == {"a.txt"}


def test_abandoned_staging_dirs_of_dead_builds_are_removed(tmp_path):
    import subprocess
    import sys

    from builder.core.output import _STAGING_PREFIX, _host

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    abandoned = tmp_path / f"{_STAGING_PREFIX}{_host()}-{dead}-abc"
    abandoned.mkdir()
    (abandoned / "half.h5").write_text("x")
    alive = tmp_path / f"{_STAGING_PREFIX}{_host()}-{os.getpid()}-def"
    alive.mkdir()
    foreign = tmp_path / f"{_STAGING_PREFIX}otherhost-{dead}-ghi"
    foreign.mkdir()
    _build(tmp_path, {"a.txt": "1"})
    assert not abandoned.exists()
    assert alive.exists() and foreign.exists()
