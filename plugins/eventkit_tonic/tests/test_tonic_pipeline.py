"""The whole path on files in the published SHD layout: tonic's file layout -> preprocessing ->
cache -> augmentation -> training -> evaluation, through the same entry point a user runs
(``+experiment=shd_fast``), and the synthetic stand-in learning well above chance."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from eventkit.plugin import run
from eventkit.plugin import compose
from eventkit.plugin.testing import checkpoint_test_accuracy


def _tiny(cfg, epochs=1):
    cfg.trainer.epochs = epochs
    cfg.trainer.progress = False
    cfg.trainer.threads = 2
    return cfg


def test_shd_fast_trains_on_files_in_the_shd_layout(shd_root, tmp_path):
    root, _ = shd_root
    cfg = compose(
        [
            "+experiment=shd_fast",
            f"dataset.root={root}",
            "dataset.verify=false",
            "network.hidden=64",
            "dataset.val_split=random",
        ]
    )
    cfg = _tiny(cfg)
    cfg.dataset.augment[1].n_extra = 16
    summary = run(cfg, tmp_path / "run")
    # the reported accuracy is the trained weights' on the 20 test files, recomputed from the run dir
    assert (summary["test_accuracy"], 20) == checkpoint_test_accuracy(tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().strip().splitlines()
    assert len(lines) == 1
    assert len(list((root / "preprocessed").iterdir())) == 2  # train and test cached for the next run
    resolved = OmegaConf.load(tmp_path / "run" / "config_resolved.yaml")
    assert resolved.dataset.name == "shd" and [a.name for a in resolved.dataset.augment] == ["shift", "blend"]


def test_ssc_experiment_runs_on_files_in_the_ssc_layout(tmp_path):
    from fixtures_shd import make_root

    root = tmp_path / "data"
    make_root(root, "ssc", {"train": 40, "valid": 35, "test": 35}, 35)
    cfg = _tiny(
        compose(["+experiment=ssc", f"dataset.root={root}", "dataset.verify=false", "network.hidden=64"]), epochs=1
    )
    # the authors' regulariser table has sizes 256/512/1024; a tiny net needs its own value
    cfg.network.regularizer.strength = 2.5e-9
    summary = run(cfg, tmp_path / "run")
    assert (summary["test_accuracy"], 35) == checkpoint_test_accuracy(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_shd_fast_learns_the_synthetic_set_well_above_chance(tmp_path):
    """20 classes: chance is 5 %. A reduced synthetic set keeps this to a few minutes (measured:
    36 % test accuracy after the 3 epochs)."""
    cfg = compose(["+experiment=shd_fast", "dataset=synthetic_kws", "dataset.n_train=2000", "dataset.n_test=500"])
    cfg = _tiny(cfg, epochs=3)
    cfg.dataset.augment[1].n_extra = 500
    summary = run(cfg, tmp_path / "run")
    assert summary["test_accuracy"] > 0.2, summary


@pytest.mark.parametrize("experiment", ["ssc_delays", "shd_delays"])
def test_delay_experiments_run_on_files_in_the_published_layout(tmp_path, experiment):
    """The headline recipes end to end on small files in the SSC / SHD layout: they compose,
    train learnable delays (which move and stay in range) and write the run directory."""
    from fixtures_shd import make_root
    from safetensors.numpy import load_file

    root = tmp_path / "data"
    if experiment == "ssc_delays":
        make_root(root, "ssc", {"train": 40, "valid": 35, "test": 35}, 35)
        sizes = ["network.hidden=[48,32]"]
    else:
        make_root(root, "shd", {"train": 60, "test": 40}, 20)
        sizes = ["network.hidden=48", "dataset.val_split=random"]
    cfg = compose(
        [f"+experiment={experiment}", f"dataset.root={root}", "dataset.verify=false", "trainer.batch_size=16", *sizes]
    )
    assert cfg.network.delays.ff.max == 1000.0 and cfg.trainer.patience == 15
    summary = run(_tiny(cfg), tmp_path / "run")
    assert summary["test_accuracy"] is not None
    weights = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    d = weights["model.ff0_delay"]
    init_hi = 50.0 if experiment == "ssc_delays" else 150.0
    assert d.min() >= 0 and d.max() <= 1000.0 and d.max() > 0.5 * init_hi
    if experiment == "shd_delays":
        assert "model.rec0_delay" in weights


@pytest.mark.slow  # compiles or installs afresh in a subprocess (tens of seconds)
def test_ssc_delays_on_loihi2_end_to_end_on_files_in_the_ssc_layout(tmp_path):
    """The headline command on small SSC-layout files: delays adapted to the chip (round, <= 62
    steps, noticed in the summary), trained, quantised with their integer delays, emulated and
    exported (and checked in Lava where a Lava environment exists)."""
    import h5py
    from fixtures_shd import make_root

    root = tmp_path / "data"
    make_root(root, "ssc", {"train": 40, "valid": 35, "test": 35}, 35)
    cfg = compose(
        [
            "+experiment=ssc_delays",
            "target=loihi2",
            f"dataset.root={root}",
            "dataset.verify=false",
            "trainer.batch_size=16",
            "network.hidden=[48,32]",
            "target.samples=4",
        ]
    )
    summary = run(_tiny(cfg), tmp_path / "run")
    assert any("max: 1000 -> 62 ms" in n for n in summary["notices"])
    resolved = OmegaConf.load(tmp_path / "run" / "config_resolved.yaml")
    assert resolved.network.delays.ff.max == 62.0 and resolved.network.delays.ff.mode == "round"
    deployed = summary["deploy"]["loihi2"]
    assert deployed["chip_test_accuracy"] is not None
    with h5py.File(tmp_path / "run" / "deploy" / "loihi2" / "model.net") as f:
        delay = f["layer/1/delay"][()]
        assert delay.shape == (48, 700) and 0 <= delay.min() and delay.max() <= 62
    assert "## Notices" in (tmp_path / "run" / "report.md").read_text()


def test_shd_alif_trains_adaptive_neurons_and_their_constants(tmp_path):
    """experiment=shd_alif end to end (on SHD-shaped generated data: the recipe's network and
    training, no download): ALIF hidden neurons fire, and tau_mem, tau_syn, tau_adapt and
    adapt_step train (they move and stay in their ranges)."""
    from safetensors.numpy import load_file

    cfg = compose(
        [
            "+experiment=shd_alif",
            "dataset=synthetic_kws",
            "dataset.n_train=64",
            "dataset.n_test=32",
            "dataset.augment=[]",
            "network.hidden=48",
            "network.regularizer.strength=2.5e-10",
            "trainer.batch_size=16",
        ]
    )
    assert cfg.neuron.name == "alif" and set(cfg.network.learn_tau) == {"tau_mem", "tau_syn", "tau_adapt", "adapt_step"}
    summary = run(_tiny(cfg), tmp_path / "run")
    assert summary["test_accuracy"] is not None
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"silent_neurons": 48,' not in rows[0]
    weights = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    for key, start in (("tau_mem", 20.0), ("tau_syn", 5.0), ("tau_adapt", 200.0), ("adapt_step", 0.2)):
        value = float(weights[f"model.{key}0"])
        lo, hi = cfg.network.learn_tau[key]
        assert value != start and lo <= value <= hi, (key, value)


@pytest.mark.slow  # a 256-neuron SHD-shaped training run (tens of seconds)
def test_shd_tau_per_neuron_trains_each_neurons_time_constants(tmp_path):
    """experiment=shd_tau_per_neuron end to end (on SHD-shaped generated data: the recipe's network
    and training, no download): the hidden neurons have their own time constants (drawn from a gamma
    around 20 and 5 ms), within their ranges, after training (tests/test_engine_tau_per_neuron.py
    checks that each neuron's move)."""
    from safetensors.numpy import load_file

    cfg = compose(
        [
            "+experiment=shd_tau_per_neuron",
            "dataset=synthetic_kws",
            "dataset.n_train=64",
            "dataset.n_test=32",
            "dataset.augment=[]",
            "network.hidden=48",
            "network.regularizer.strength=2.5e-10",
            "trainer.batch_size=16",
        ]
    )
    assert cfg.network.tau_per_neuron and cfg.network.tau_init == "gamma"
    summary = run(_tiny(cfg), tmp_path / "run")
    assert summary["test_accuracy"] is not None
    last = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    for key in ("tau_mem", "tau_syn"):
        value = last[f"model.{key}0"]
        lo, hi = cfg.network.learn_tau[key]
        assert value.shape == (48,) and value.std() > 0.5 and lo <= value.min() and value.max() <= hi
