"""Every ``Fix:`` an error message suggests works: for each bad command line below (the bad inputs
the other tests make, and those a user met), the fix is applied exactly as written and the
config must then pass every check that runs before training -- composition, validation and the
target's adaptation. A fix that names the wrong key, a form Hydra cannot merge, or a value
another check refuses fails here."""

from __future__ import annotations

import re

import pytest

from eventkit.running.failures import composition_error
from eventkit.running.pipeline import adapted_config
from eventkit.running.config import ConfigError, compose, fix_overrides
from eventkit.base.registry import get_registry

BAD = [
    ["trainer.batch_size=0"],
    ["trainer.epochs=0"],
    ["network.hidden=0"],
    ["network.layers=2", "network.hidden=[10,10,10]"],
    ["seed=-1"],
    ["dataset.dt=0"],
    ["neuron.tau_mem=-1"],
    ["neuron.tau_mem=0.1"],  # shorter than dt
    ["trainer.device=tpu"],
    ["optimizer=sgdd"],
    ["readout=sum_vv"],
    ["trainer.epoch=3"],
    ["optimizer.momentum=0.9"],  # a key of another optimizer (sgd's), not a new key for adam
    ["optimizer=sgd", "optimizer.nesterow=true"],
    ["+experiment=timing_delays", "network.delays.ff.max=100", "network.delays.ff.init.uniform=[0,120]"],
    ["+experiment=timing_delays", "network.delays.ff.max=nan"],
    ["+experiment=timing_delays", "network.delays.ff.max=inf"],
    ["+experiment=timing_delays", "network.delays.ff.max=-1"],
    ["+experiment=timing_delays", "network.delays.ff.init.uniform=[0,nan]"],
    ["+experiment=timing_delays", "network.delays.ff.mode=sometimes"],
    ["+experiment=timing_delays", "network.delays.bar={max:200}"],
    ["+experiment=timing_delays", "network.delays.ff0={max:5}"],
    ["+experiment=timing_delays", "network.delay_lr=0"],
    # the chip: a typed max beyond 62 steps hides no other problem, and its fix covers the init range
    ["+experiment=timing_delays", "target=loihi2", "network.delays.ff.max=100"],
    ["+experiment=timing_delays", "target=loihi2", "network.delays.ff.mode=exact"],
    ["+experiment=timing_delays", "target=loihi2", "network.delays.ff.init.uniform=[0,100]"],
    ["+experiment=ssc_delays", "target=loihi2", "network.delays.ff.max=1000"],
    ["+experiment=shd_delays", "target=loihi2"],
    ["+experiment=ssc_delays", "scheduler=constant"],  # the recipe's scheduler.start_factor stays behind
]


def problems(overrides: list[str]) -> list[str]:
    """What stops this command line before training: [] when nothing does."""
    try:
        cfg = compose(overrides)
    except Exception as exc:
        text = composition_error(exc, overrides)
        if text is None:
            raise
        return [text]
    try:
        adapted_config(cfg, overrides, get_registry())
    except ConfigError as exc:
        return [str(exc)] if len(exc.problems) > 1 else list(exc.problems)
    return []


def suggested(message: str) -> list[str]:
    """The overrides a message's fix names (its ``Fix (all at once):`` line when it has one)."""
    last = message.strip().splitlines()[-1]
    merged = re.match(r"Fix \(all at once\): (.*)", last)
    fix = merged.group(1).split() if merged else fix_overrides(message)
    assert fix, f"no command-line fix in: {message}"
    return fix


def apply(overrides: list[str], message: str) -> list[str]:
    """The command line with the message's fix typed in: the fix replaces a typed override of the
    same key, and of the key the message is about (a misspelt ``trainer.epoch=3`` is replaced by
    ``trainer.epochs=3``, not kept beside it)."""
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    fix = suggested(message)
    keys = {key(f) for f in fix}
    if ": no such key" in message:
        keys.add(message.split(":", 1)[0])
    return [o for o in overrides if key(o) not in keys] + fix


@pytest.mark.parametrize("overrides", BAD, ids=[" ".join(b) for b in BAD])
def test_each_suggested_fix_removes_the_error(overrides):
    found = problems(overrides)
    assert found, f"{overrides} should be refused"
    fixed = apply(overrides, found[0])
    assert problems(fixed) == [], f"the fix {suggested(found[0])} for {found[0]!r} left {problems(fixed)}"


def test_every_problem_of_a_config_is_reported_at_once():
    """A recipe's init range beyond a typed max, and that max beyond the chip: both in one error,
    with one fix covering both (each fix alone leaves the other problem)."""
    (message,) = problems(["+experiment=timing_delays", "target=loihi2", "network.delays.ff.max=100"])
    assert message.startswith("2 problems in this config:")
    assert "network.delays.ff.init.uniform=[0.0, 150.0] must lie within [0, max=100.0]" in message
    assert "target 'loihi2': network.delays.ff.max=100 ms: Loihi 2 delays are 0..62 steps" in message
    assert suggested(message) == ["network.delays.ff.init.uniform=[0,62]", "network.delays.ff.max=62"]


def test_a_fix_for_a_range_written_as_a_mapping_keeps_the_mapping():
    """The recipe writes init: {uniform: [..]}: a fix ``init=[..]`` would fail in Hydra's merge."""
    (message,) = problems(["+experiment=timing_delays", "network.delays.ff.max=100"])
    assert suggested(message) == ["network.delays.ff.init.uniform=[0,100]"]
    with pytest.raises(Exception, match="Error merging override"):  # why the mapping form matters
        compose(["+experiment=timing_delays", "network.delays.ff.init=[0,100]"])
