"""End-to-end builds of the L5 network: counts, placement invariants, SONATA read-back,
reproducibility, and the CLI's contract (exit codes, --force, no partial output)."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from builder.commands import cli
from builder.commands.build import SimulationBuilder
from builder.core.output import MANIFEST_NAME
from builder.core.segments import SegmentTable
from builder.recipes.l5_params import load_params

ROOT = Path(__file__).resolve().parent.parent
L5 = ROOT / "params" / "L5NetParams.json"
L23 = ROOT / "params" / "L2-3NetParams.json"

pytestmark = pytest.mark.neuron  # the default cell's segment table is derived with NEURON

SPEC_COUNTS = {
    "n_dend_exc": 2008,
    "n_apic_exc": 3214,
    "n_dend_inh": 378,
    "n_apic_inh": 136,
    "n_prox_dend_inh": 37,
    "n_soma_inh": 53,
    "clust_per_group": 23,
}


def short_params(tmp_path: Path, stop_s: float = 2.0, name="p.json", **changes) -> Path:
    """The default params with a short input stretch (and optional dotted-key changes)."""
    data = json.loads(L5.read_text())
    data["time"]["stop"] = stop_s
    for key, value in changes.items():
        node = data
        parts = key.split("__")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def digests(outdir: Path) -> dict[str, str]:
    return {
        p.relative_to(outdir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("l5")
    params = short_params(tmp)
    b = SimulationBuilder(params, seed=11)
    result = b.build(tmp / "out")
    return b, result, tmp / "out"


def test_spec_counts_exact():
    counts = SimulationBuilder(L5).check()
    assert {k: counts[k] for k in SPEC_COUNTS} == SPEC_COUNTS


def test_output_layout(built):
    _, result, out = built
    expected = {
        "FunctionalGroups.csv",
        "simulation_config.json",
        "circuit_config.json",
        "node_sets.json",
        "exc_stim_spikes.h5",
        "prox_inh_stim_spikes.h5",
        "dist_inh_stim_spikes.h5",
    }
    for pop in ("biophysical", "exc_stim", "prox_inh_stim", "dist_inh_stim"):
        expected |= {f"network/{pop}_nodes.h5", f"network/{pop}_node_types.csv"}
    for src in ("exc_stim", "prox_inh_stim", "dist_inh_stim"):
        expected |= {
            f"network/{src}_biophysical_edges.h5",
            f"network/{src}_biophysical_edge_types.csv",
        }
    assert expected <= set(result.files)
    assert (out / "components/templates/L5PCtemplate.hoc").is_file()
    assert any(p.suffix == ".mod" for p in (out / "components/mechanisms/modfiles").iterdir())
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == set(result.files)
    # every path in the configs is relative
    for name in ("simulation_config.json", "circuit_config.json"):
        text = (out / name).read_text()
        assert str(out) not in text and '"/' not in text


def test_libsonata_reads_everything(built):
    libsonata = pytest.importorskip("libsonata")
    _, result, out = built
    c = result.counts
    cc = libsonata.CircuitConfig.from_file(out / "circuit_config.json")
    sizes = {p: cc.node_population(p).size for p in cc.node_populations}
    assert sizes == {
        "biophysical": 1,
        "exc_stim": c["n_dend_exc"] + c["n_apic_exc"],
        "prox_inh_stim": c["n_soma_inh"] + c["n_prox_dend_inh"],
        "dist_inh_stim": c["n_dend_inh"] + c["n_apic_inh"],
    }
    for name in cc.edge_populations:
        e = cc.edge_population(name)
        src = name.split("_to_")[0]
        assert e.source == src and e.target == "biophysical"
        assert e.size == result.n_edges[src]
        assert len(e.afferent_edges([0]).flatten()) == e.size
        sec_id = e.get_attribute("sec_id", e.select_all())
        assert sec_id.min() >= 0
    for pop in ("exc_stim", "prox_inh_stim", "dist_inh_stim"):
        r = libsonata.SpikeReader(str(out / f"{pop}_spikes.h5"))
        sp = r[pop]
        assert sp.sorting == "by_id"
        ids, ts = np.array(sp.get()).T if result.n_spikes[pop] else (np.zeros(0), np.zeros(0))
        assert ids.size == result.n_spikes[pop]
        assert ts.min() >= 0.0 and ts.max() < 2000.0
    # the simulation config parses (libsonata wants 'synapse_replay' as the spike input module,
    # BMTK wants 'sonata'; we write BMTK's and check everything else libsonata needs)
    sim = json.loads((out / "simulation_config.json").read_text())
    for inp in sim["inputs"].values():
        inp["module"] = "synapse_replay"
    cfg = libsonata.SimulationConfig(json.dumps(sim), str(out))
    assert cfg.run.tstop == 2000.0 and cfg.run.random_seed == 11
    assert cfg.list_report_names == {"v_soma"}


def test_bmtk_reads_everything(built, monkeypatch):
    pytest.importorskip("bmtk")
    from bmtk.simulator.bionet.config import Config
    from bmtk.utils.sonata import File

    _, result, out = built
    for src in ("exc_stim", "prox_inh_stim", "dist_inh_stim"):
        f = File(
            data_files=[str(out / f"network/{src}_biophysical_edges.h5")],
            data_type_files=[str(out / f"network/{src}_biophysical_edge_types.csv")],
        )
        pop = f.edges[f"{src}_to_biophysical"]
        edges = list(pop.get_target(0))
        assert len(edges) == result.n_edges[src]
        assert {e["dynamics_params"] for e in edges} <= {"PN2PN.json", "PV2PN.json", "SOM2PN.json"}
    nodes = File(
        data_files=[str(out / "network/biophysical_nodes.h5")],
        data_type_files=[str(out / "network/biophysical_node_types.csv")],
    )
    cell = nodes.nodes["biophysical"].get_node_id(0)
    assert cell["model_template"] == "hoc:L5PCtemplate" and cell["model_type"] == "biophysical"
    # BMTK resolves the manifest's "." against the working directory (our runner changes into
    # the config's directory, as users of BMTK's run_bionet.py do)
    monkeypatch.chdir(out)
    conf = Config.from_json("simulation_config.json")
    assert conf["run"]["tstop"] == 2000.0
    assert set(conf["inputs"]) == {
        "exc_stim_spikes",
        "prox_inh_stim_spikes",
        "dist_inh_stim_spikes",
    }


def _edges(out: Path, src: str):
    with h5py.File(out / f"network/{src}_biophysical_edges.h5", "r") as f:
        g = f[f"edges/{src}_to_biophysical"]
        return (g["source_node_id"][()], g["edge_type_id"][()], g["0/sec_id"][()], g["0/sec_x"][()])


def _row_lookup(table: SegmentTable):
    return {
        (int(i), round(float(x), 9)): k
        for k, (i, x) in enumerate(zip(table.bmtk_id, table.x, strict=True))
    }


def test_excitatory_placement_invariants(built):
    b, result, out = built
    table = b.segment_table
    lookup = _row_lookup(table)
    params = b.params
    src, _, sec_id, sec_x = _edges(out, "exc_stim")
    rows = np.array(
        [lookup[(int(i), round(float(x), 9))] for i, x in zip(sec_id, sec_x, strict=True)]
    )
    eligible = ((table.type[rows] == "dend") & (table.distance_um[rows] >= 50)) | (
        table.type[rows] == "apic"
    )
    assert eligible.all()
    # synapses per input cell within divergence bounds; every cell has synapses
    n_exc = result.counts["n_dend_exc"] + result.counts["n_apic_exc"]
    per_cell = np.bincount(src, minlength=n_exc)
    assert per_cell.min() >= params["divergence"]["exc"]["min"]
    assert per_cell.max() <= params["divergence"]["exc"]["max"]
    # a cell's synapses lie within 2 cluster radii of each other only if in one cluster; at
    # least they all lie within 2 * group_radius (same functional group) of each other
    groups = np.loadtxt(out / "FunctionalGroups.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert groups[:, 0].tolist() == list(range(n_exc))
    grp = groups[src, 1]
    gr = params["groups"]["group_radius"]
    for g in np.unique(grp)[:10]:
        xyz = table.xyz_um[rows[grp == g]]
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
        assert d.max() <= 2 * gr + 1e-6
    # dendritic groups' synapses on basal dendrites, apical groups' on apical
    n_dend_groups = result.counts["n_groups_dend"]
    assert (table.type[rows[grp < n_dend_groups]] == "dend").all()
    assert (table.type[rows[grp >= n_dend_groups]] == "apic").all()


def test_inhibitory_placement_invariants(built):
    b, result, out = built
    table = b.segment_table
    lookup = _row_lookup(table)
    c = result.counts
    src, _, sec_id, sec_x = _edges(out, "prox_inh_stim")
    rows = np.array(
        [lookup[(int(i), round(float(x), 9))] for i, x in zip(sec_id, sec_x, strict=True)]
    )
    on_soma = src < c["n_soma_inh"]
    assert (table.type[rows[on_soma]] == "soma").all()
    assert (table.type[rows[~on_soma]] == "dend").all()
    assert (table.distance_um[rows[~on_soma]] < 50).all()
    src, _, sec_id, sec_x = _edges(out, "dist_inh_stim")
    rows = np.array(
        [lookup[(int(i), round(float(x), 9))] for i, x in zip(sec_id, sec_x, strict=True)]
    )
    basal = src < c["n_dend_inh"]
    assert (table.type[rows[basal]] == "dend").all()
    assert (table.type[rows[~basal]] == "apic").all()
    assert ((table.distance_um[rows] >= 50) & (table.distance_um[rows] < 2000)).all()
    per_cell = np.bincount(src, minlength=c["n_dend_inh"] + c["n_apic_inh"])
    assert per_cell[: c["n_dend_inh"]].min() >= 1 and per_cell[: c["n_dend_inh"]].max() <= 5
    assert per_cell[c["n_dend_inh"] :].min() >= 6 and per_cell[c["n_dend_inh"] :].max() <= 18


def test_node_types_label_inhibition_as_inhibitory(built):
    _, _, out = built
    for pop in ("prox_inh_stim", "dist_inh_stim"):
        text = (out / f"network/{pop}_node_types.csv").read_text()
        assert " inh " in text and " exc " not in text


def test_same_seed_identical_other_seed_different(tmp_path, built):
    _, _, out = built
    params = short_params(tmp_path)
    SimulationBuilder(params, seed=11).build(tmp_path / "again")
    SimulationBuilder(params, seed=12).build(tmp_path / "other")
    a, again, other = digests(out), digests(tmp_path / "again"), digests(tmp_path / "other")
    assert a == again
    for name in (
        "network/exc_stim_biophysical_edges.h5",
        "exc_stim_spikes.h5",
        "prox_inh_stim_spikes.h5",
        "dist_inh_stim_spikes.h5",
        "network/dist_inh_stim_biophysical_edges.h5",
    ):
        assert a[name] != other[name], name


def test_changing_one_population_leaves_others(tmp_path, built):
    _, _, out = built
    # fewer apical SOM cells: the excitatory network, rasters and perisomatic edges unchanged
    params = short_params(tmp_path, divergence__apic_inh={"m": 10, "s": 3, "min": 6, "max": 18})
    SimulationBuilder(params, seed=11).build(tmp_path / "o")
    a, b = digests(out), digests(tmp_path / "o")
    for name in (
        "network/exc_stim_biophysical_edges.h5",
        "network/exc_stim_nodes.h5",
        "exc_stim_spikes.h5",
        "network/prox_inh_stim_biophysical_edges.h5",
        "FunctionalGroups.csv",
    ):
        assert a[name] == b[name], name
    assert a["network/dist_inh_stim_nodes.h5"] != b["network/dist_inh_stim_nodes.h5"]


def test_output_is_relocatable(tmp_path, built):
    libsonata = pytest.importorskip("libsonata")
    _, result, out = built
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(out, moved)
    cc = libsonata.CircuitConfig.from_file(moved / "circuit_config.json")
    e = cc.edge_population("exc_stim_to_biophysical")
    assert e.size == result.n_edges["exc_stim"]


def test_time_start_offsets_spikes(tmp_path):
    params = short_params(tmp_path, stop_s=1.5, time__start=1.0)
    SimulationBuilder(params, seed=3).build(tmp_path / "o")
    with h5py.File(tmp_path / "o" / "exc_stim_spikes.h5", "r") as f:
        ts = f["spikes/exc_stim/timestamps"][()]
    assert ts.min() >= 1000.0 and ts.max() < 1500.0
    assert np.all(ts == np.floor(ts))  # bin starts at 1 ms resolution


def test_rhythmic_inhibition_modulates_rate(tmp_path):
    rhythm = {"f": 8.0, "mod": 0.5}
    params = short_params(
        tmp_path,
        stop_s=5.0,
        inh_frs__proximal={"m": 40.0, "s": 5.0, "rhythmicity": rhythm},
    )
    SimulationBuilder(params, seed=5).build(tmp_path / "o")
    with h5py.File(tmp_path / "o" / "prox_inh_stim_spikes.h5", "r") as f:
        ts = f["spikes/prox_inh_stim/timestamps"][()]
    phase = (ts / 1000.0 * rhythm["f"]) % 1.0
    # rate ∝ 1 + sin(2π f t): spikes in the rising half-cycle (phase < 0.5) outnumber the rest
    hi, lo = np.sum(phase < 0.5), np.sum(phase >= 0.5)
    # expected ratio (1 + 2/π)/(1 - 2/π) ≈ 4.5 for mod 0.5 (amplitude = rate)
    assert 3.5 < hi / lo < 5.8


def test_lengths_computed_when_absent_and_mismatch_warned(tmp_path):
    data = json.loads(L5.read_text())
    data["time"]["stop"] = 1.0
    del data["lengths"]
    p = tmp_path / "nolengths.json"
    p.write_text(json.dumps(data))
    b = SimulationBuilder(p)
    measured = b.lengths_um()
    assert measured == pytest.approx(
        {"basal_dist": 4649, "basal_prox": 483, "apic": 7440}, rel=0.03
    )
    assert b.warnings == []
    data["lengths"] = {"basal_dist": 4649, "basal_prox": 483, "apic": 9000}
    p.write_text(json.dumps(data))
    b = SimulationBuilder(p)
    b.lengths_um()
    assert len(b.warnings) == 1 and "lengths.apic" in b.warnings[0]


def test_user_segments_csv(tmp_path, built):
    b, _, _ = built
    csv = tmp_path / "MySegments.csv"
    b.segment_table.to_csv(csv)
    params = short_params(tmp_path, cell__segments_file="MySegments.csv")
    b2 = SimulationBuilder(params, seed=11)
    assert len(b2.segment_table) == len(b.segment_table)
    b2.build(tmp_path / "o")


def test_l23_allen_cell_builds(tmp_path):
    libsonata = pytest.importorskip("libsonata")
    data = json.loads(L23.read_text())
    data["time"]["stop"] = 1.0
    p = tmp_path / "l23.json"
    p.write_text(json.dumps(data))
    result = SimulationBuilder(p, seed=2).build(tmp_path / "o")
    out = tmp_path / "o"
    assert (out / "components/templates/Biophys1.hoc").is_file()
    assert (out / "components/morphologies" / data["cell"]["morphology"]).is_file()
    assert (out / "components/biophysical_neuron_models" / data["cell"]["dynamic_params"]).is_file()
    cc = libsonata.CircuitConfig.from_file(out / "circuit_config.json")
    assert (
        cc.node_population("exc_stim").size
        == result.counts["n_dend_exc"] + result.counts["n_apic_exc"]
    )


# ------------------------------------------------------------------------------- CLI


def run_cli(args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "build_network.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_legacy_usage_and_seed(tmp_path):
    params = short_params(tmp_path, stop_s=0.5)
    r = run_cli([str(params), "7", "-o", "a"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "seed 7" in r.stdout
    r = run_cli([str(params), "8", "-o", "b", "-q"], tmp_path)
    assert r.returncode == 0 and r.stdout == ""
    assert digests(tmp_path / "a") != digests(tmp_path / "b")


def test_cli_invalid_params_exit_2_nothing_written(tmp_path):
    data = json.loads(L5.read_text())
    data["divergence"]["apic_inh"]["m"] = -1
    data["dt"] = "fast"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    r = run_cli([str(p), "-o", "out"], tmp_path)
    assert r.returncode == 2
    assert "bad.json" in r.stderr and "divergence.apic_inh.m" in r.stderr and "dt" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_check_writes_nothing(tmp_path):
    r = run_cli([str(L5), "--check"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "n_dend_exc = 2008" in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_foreign_files_then_force(tmp_path):
    params = short_params(tmp_path, stop_s=0.5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "simulation_config.json").write_text("my own config")
    (out / "notes.txt").write_text("mine")
    r = run_cli([str(params), "-o", str(out)], tmp_path)
    assert r.returncode == 2 and "simulation_config.json" in r.stderr and "--force" in r.stderr
    assert (out / "simulation_config.json").read_text() == "my own config"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "simulation_config.json"]
    r = run_cli([str(params), "-o", str(out), "--force"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "simulation_config.json").read_text())["run"]["tstop"] == 500.0
    assert (out / "notes.txt").read_text() == "mine"
    # rebuilding over our own output needs no --force
    r = run_cli([str(params), "3", "-o", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr


def test_failed_build_leaves_previous_output(tmp_path, monkeypatch, capsys):
    params = short_params(tmp_path, stop_s=0.5)
    out = tmp_path / "out"
    assert cli.main([str(params), "-o", str(out), "-q"]) == 0
    before = digests(out)

    from builder.core import sonata

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    # the spike writer the build streams into (builder.core.network.write_network)
    monkeypatch.setattr(sonata.SpikeStreamWriter, "append", boom)
    assert cli.main([str(params), "5", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("build-network: error: ") and err.count("\n") == 1
    assert err.endswith("exc_stim_spikes.h5: cannot write: disk full (simulated)\n")
    assert digests(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".l5net-staging")]


def test_params_dict_api_matches_file(tmp_path):
    params = short_params(tmp_path, stop_s=0.5)
    d = load_params(params)
    b = SimulationBuilder(copy.deepcopy(d), seed=4)
    b.build(tmp_path / "a")
    SimulationBuilder(params, seed=4).build(tmp_path / "b")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_cli_set_overrides(tmp_path):
    r = run_cli(
        [str(L5), "--set", "time.stop=0.25", "--set", "inh_frs.proximal.m=5", "-o", "o", "-q"],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "o" / "simulation_config.json").read_text())
    assert cfg["run"]["tstop"] == 250.0
    r = run_cli([str(L5), "--set", "time.stpo=1", "--set", "dt=-1", "-o", "x"], tmp_path)
    assert r.returncode == 2
    assert "time.stpo" in r.stderr and "dt" in r.stderr
    assert not (tmp_path / "x").exists()


def test_default_network_builds_for_every_seed_of_a_sweep(tmp_path):
    # legacy: a group centre on an isolated branch tip crashed some seeds mid-build
    params = load_params(short_params(tmp_path, stop_s=0.05))
    for seed in range(1, 21):
        built = SimulationBuilder(copy.deepcopy(params), seed=seed).network()
        assert built.network.edges[0].size > 0
