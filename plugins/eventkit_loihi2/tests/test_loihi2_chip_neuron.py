"""target=loihi2 trains the chip's own neuron whatever recipe it is composed with: a recipe's
float model (lif, li) becomes its chip counterpart (loihi_cuba, loihi_li) with its time constants
and threshold, loudly; a neuron the user typed is kept, with a notice that says what that costs."""

import pytest

from eventkit.plugin import adapted_config
from eventkit.plugin import ConfigError, compose
from eventkit.plugin import get_registry

#: every experiment shipped (core and plugins), with what it needs to run on the chip at all
EXPERIMENTS = {
    "synthetic_kws": [],
    "timing_delays": [],
    "shd": [],
    "shd_fast": [],
    "shd_delays": ["network.delays.rec=null", "network.recurrent=false"],  # the chip has no recurrent delays
    "ssc": [],
    "ssc_delays": [],
}
#: experiments whose neuron model the chip cannot run, with what the refusal names
OFF_CHIP = {
    "shd_alif": "neuron=alif",
    "synthetic_kws_alif": "neuron=alif",
    "shd_tau_per_neuron": "network.tau_per_neuron",
}


def test_the_table_lists_every_shipped_experiment():
    from hydra.core.global_hydra import GlobalHydra  # noqa: F401  (compose below initialises Hydra)

    from eventkit.plugin import conf_dir

    shipped = {p.stem for p in (conf_dir() / "experiment").glob("*.yaml")}
    for path, _ in get_registry().config_dirs:
        if path.startswith("pkg://"):
            import importlib.resources as resources

            root = resources.files(path[len("pkg://") :])
            shipped |= (
                {p.name[:-5] for p in (root / "experiment").iterdir() if p.name.endswith(".yaml")}
                if (root / "experiment").is_dir()
                else set()
            )
    assert shipped <= set(EXPERIMENTS) | set(OFF_CHIP), sorted(shipped - set(EXPERIMENTS) - set(OFF_CHIP))


@pytest.mark.parametrize("experiment", sorted(OFF_CHIP))
def test_an_experiment_the_chip_cannot_run_is_refused_in_one_line(experiment, tmp_path):
    from eventkit.plugin import run

    typed = [f"+experiment={experiment}", "target=loihi2", "dataset=synthetic_kws", "dataset.n_train=40"]
    with pytest.raises(ConfigError) as err:
        run(compose(typed), tmp_path / "run", explicit=typed)
    message = str(err.value)
    assert OFF_CHIP[experiment] in message and "\n" not in message
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_every_experiment_trains_the_chip_neuron_under_target_loihi2(experiment):
    overrides = [f"+experiment={experiment}", "target=loihi2", *EXPERIMENTS[experiment]]
    composed = compose(overrides)
    before = composed.neuron.name  # a recipe naming neuron: lif wins over the target's default
    cfg, target, notices = adapted_config(composed, overrides, get_registry())
    assert cfg.neuron.name == "loihi_cuba", experiment
    assert cfg.network.output.name == "loihi_li", experiment
    recipe = compose([f"+experiment={experiment}"])
    for key in ("tau_mem", "tau_syn", "threshold"):
        assert cfg.neuron[key] == recipe.neuron[key], (experiment, key)
    if before == "lif":
        assert any(n.startswith("target loihi2: neuron: lif -> loihi_cuba") for n in notices), notices


def test_a_typed_neuron_is_kept_and_the_notice_says_what_it_costs():
    overrides = ["+experiment=ssc_delays", "target=loihi2", "neuron=lif"]
    cfg, _, notices = adapted_config(compose(overrides), overrides, get_registry())
    assert cfg.neuron.name == "lif"
    (notice,) = [n for n in notices if "neuron:" in n]
    assert "lif kept as typed" in notice and "carries the mismatch" in notice


def test_a_recipe_neuron_setting_without_a_chip_counterpart_is_refused_with_a_fix():
    overrides = ["+experiment=ssc_delays", "target=loihi2", "+neuron.refractory=2"]
    with pytest.raises(ConfigError, match=r"neuron.refractory: .*no counterpart.*Fix: neuron=loihi_cuba"):
        adapted_config(compose(overrides), overrides[:2], get_registry())


def test_the_run_records_the_neuron_change(tmp_path):
    from eventkit.plugin import run
    from eventkit.plugin.testing import tiny_run

    typed = ["target=loihi2", "target.lava=off", "trainer.smoke=true", *tiny_run()]
    # a recipe's neuron: lif (as the SHD/SSC experiments name it), not typed on the command line
    summary = run(compose([*typed, "neuron=lif", "network.output.name=li"]), tmp_path, explicit=typed)
    assert any("neuron: lif -> loihi_cuba" in n for n in summary["notices"])
    assert any("network.output: li -> loihi_li" in n for n in summary["notices"])
    assert "lif -> loihi_cuba" in (tmp_path / "report.md").read_text()
    assert "name: loihi_cuba" in (tmp_path / "config_resolved.yaml").read_text()


def test_before_and_after_weight_histograms_share_their_bins(tmp_path):
    """The float weights (x 2^e) and the chip's integers are counted in the same unit bins, so
    neither histogram looks taller for having narrower bins."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eventkit_loihi2.quantize import QuantReport, plot_histograms, shared_bins

    before = np.array([-3.4, 0.2, 7.6])
    after = np.array([-3, 0, 8, 9])
    edges = shared_bins(before, after)
    assert np.all(np.diff(edges) == 1.0) and edges[0] < -3.4 and edges[-1] > 9
    assert np.allclose(edges % 1, 0.5)  # each bin centred on a chip integer
    report = QuantReport([dict(layer="L", weight_exp=0, rel_rms_error=0.1)], {"L": before}, {"L": after})
    seen = []
    real_hist = plt.Axes.hist

    def spy(ax, x, bins=None, **kw):
        seen.append(np.asarray(bins))
        return real_hist(ax, x, bins=bins, **kw)

    plt.Axes.hist = spy
    try:
        plot_histograms(report, tmp_path / "h.png")
    finally:
        plt.Axes.hist = real_hist
    assert len(seen) == 2 and np.array_equal(seen[0], seen[1])


def test_learned_time_constants_deploy_as_the_layers_chip_decays(tmp_path):
    """network.learn_tau with target=loihi2 trains loihi_cuba's time constants (QAT on) and the
    NetX file carries each layer's iDecay / vDecay of the learned values. Fails if the export
    reads the configured time constants instead of the trained ones."""
    from eventkit.plugin import run
    from eventkit.plugin.testing import tiny_run
    from eventkit_loihi2.netx import read_netx
    from safetensors.torch import load_file
    from eventkit_loihi2.quantize import cuba_decays

    learn = ["network.learn_tau={tau_mem: [10, 100], tau_syn: [1, 9]}", "network.tau_lr=2.0"]
    typed = ["target=loihi2", "target.lava=off", *tiny_run(epochs=2), *learn]
    run(compose(typed), tmp_path, explicit=typed)
    tensors = load_file(tmp_path / "checkpoints" / "best.safetensors")  # the run-dir contract's deployed checkpoint
    tau_mem, tau_syn = float(tensors["model.tau_mem0"]), float(tensors["model.tau_syn0"])
    cfg = compose(typed)
    dt = float(cfg.dataset.dt)
    learned = cuba_decays(tau_syn, tau_mem, dt)
    assert learned != cuba_decays(cfg.neuron.tau_syn, cfg.neuron.tau_mem, dt)  # training moved them
    chip = read_netx(tmp_path / "deploy" / "loihi2" / "model.net", dt=dt)
    assert (chip.layers[0].i_decay, chip.layers[0].v_decay) == learned


def test_a_learn_tau_range_the_chip_cannot_hold_is_refused_in_one_line(tmp_path):
    """A range whose end gives a chip decay outside 1..4095 stops before training, naming the
    key's corner and the fix, and writes no results."""
    from eventkit.plugin import run
    from eventkit.plugin.testing import tiny_run

    typed = ["target=loihi2", "target.lava=off", *tiny_run(), "network.learn_tau={tau_mem: [10, 100000]}"]
    with pytest.raises(ConfigError) as err:
        run(compose(typed), tmp_path, explicit=typed)
    message = str(err.value)
    assert "learn_tau" in message and "tau_mem=100000" in message and "chip decay" in message and "Fix:" in message
    assert "\n" not in message and not (tmp_path / "metrics.jsonl").exists()
