"""The training loop and its parts: schedules, optimizers, silent-neuron fix, non-finite losses."""

import math

import numpy as np
import pytest
import torch

from eventkit.rundir.checkpoints import load_checkpoint
from eventkit.data import from_samples
from eventkit.data.yinyang import yinyang
from eventkit.engine import LI, LIF, EventpropNet, SumV, spike_count_regularizer
from eventkit.components.losses import cross_entropy, mse
from eventkit.components.networks import RegularizerConfig
from eventkit.components.optimizers import adam, adamw, sgd
from eventkit.rundir.layout import BEST, LAST, RunDir
from eventkit.components.schedules import Constant, Cosine, WarmupEmaHalving
from eventkit.training import step as step_module
from eventkit.training.loop import NonFiniteLoss, TrainerConfig, _silent_fix, evaluate, fit, split_validation
from eventkit.training.parallel import DataParallel
from eventkit.training.step import Objective, forward_backward


def _opt(lr=1e-3):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_warmup_multiplies_per_batch_until_the_base_lr():
    opt = _opt(1e-3)
    sched = WarmupEmaHalving(opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)
    sched.step_batch()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.05e-6)
    n = math.ceil(math.log(1000) / math.log(1.05))
    for _ in range(n + 5):
        sched.step_batch()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_ema_halving_waits_for_a_plateau_and_the_minimum_gap():
    opt = _opt(1e-3)
    sched = WarmupEmaHalving(opt, start_factor=1.0, min_epochs_between=3)
    for acc in (0.5, 0.6, 0.7):  # improving: fast EMA above slow EMA
        sched.step_epoch(acc)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    for _ in range(30):  # a long plateau: the fast EMA converges onto the slow one from above...
        sched.step_epoch(0.7)
    sched.step_epoch(0.2)  # ...and a drop takes it below: halve
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    sched.step_epoch(0.1)  # within min_epochs_between of the last change: no second halving
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_schedule_state_round_trips():
    opt = _opt(1e-3)
    a = WarmupEmaHalving(opt)
    for _ in range(7):
        a.step_batch()
    a.step_epoch(0.4)
    b = WarmupEmaHalving(_opt(1e-3))
    b.load_state_dict(a.state_dict())
    assert b.lrs == a.lrs and b.fast == a.fast and b.epoch == a.epoch
    assert b.optimizer.param_groups[0]["lr"] == pytest.approx(a.lrs[0])


def test_cosine_reaches_min_lr():
    opt = _opt(1e-2)
    sched = Cosine(opt, epochs=4, min_lr=1e-4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        sched.step_epoch(0.0)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-4)
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="epochs"):
        Cosine(opt, epochs=0)


def test_constant_keeps_lr():
    opt = _opt(3e-3)
    sched = Constant(opt)
    sched.step_batch()
    sched.step_epoch(0.5)
    assert opt.param_groups[0]["lr"] == 3e-3


def test_optimizers_and_losses():
    params = [torch.nn.Parameter(torch.ones(3))]
    assert isinstance(adam(params), torch.optim.Adam)
    assert isinstance(adamw(params), torch.optim.AdamW)
    s = sgd(params, lr=0.1, momentum=0.5)
    assert isinstance(s, torch.optim.SGD) and s.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match="lr"):
        sgd(params, lr=0)
    readout = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    assert float(cross_entropy()(readout, labels)) == pytest.approx(math.log(1 + math.exp(-2)))
    assert float(mse(target_on=2.0)(readout, labels)) == pytest.approx(0.0)
    per_step = readout[:, None, :].expand(2, 5, 2)
    assert float(cross_entropy()(per_step, labels)) == pytest.approx(float(cross_entropy()(readout, labels)))


def _tiny(hidden=30):
    splits = yinyang(n_train=96, n_val=32, n_test=32, seed=1)
    d = splits.train
    net = EventpropNet(
        n_in=d.n_channels,
        n_out=d.n_classes,
        hidden=hidden,
        recurrent=False,
        neuron=LIF(),
        output=LI(),
        readout=SumV(),
        dt=d.dt,
        n_steps=d.n_steps,
        init=dict(ff_mean=3.0, ff_std=1.0, out_mean=0.0, out_std=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    return splits, net


NO_REG = RegularizerConfig(strength=0.0, nu=14.0)


def _loop(**kw):
    base = dict(
        epochs=2,
        batch_size=32,
        eval_batch_size=64,
        val_fraction=0.0,
        grad_clip=None,
        silent_fix=0.0,
        threads=None,
        resume=None,
        progress=False,
    )
    base.update(kw)
    return TrainerConfig(**base)


def _fit(net, opt, train, val, rundir, loss_fn=None, **loop):
    """fit() with the defaults these tests share: no regulariser, seed 0, a constant lr, no
    augmentation, no external logger."""
    return fit(
        net,
        train,
        val,
        regularizer=NO_REG,
        seed=0,
        loop=_loop(**loop),
        loss_fn=loss_fn or cross_entropy(),
        optimizer=opt,
        scheduler=Constant(opt),
        augmentations=[],
        rundir=rundir,
        logger=_NoLog(),
    )


class _NoLog:
    def log(self, metrics, step):
        pass


def test_fit_writes_metrics_and_checkpoints(tmp_path):
    splits, net = _tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    rd = RunDir(tmp_path)
    res = _fit(net, opt, splits.train, splits.val, rd, grad_clip=1.0)
    assert res.epochs == 2 and len(rd.metrics) == 2
    assert {"train_loss", "train_accuracy", "val_accuracy", "lr", "hidden_rate_hz", "epoch_time_s"} <= set(
        rd.metrics[0]
    )
    tensors, meta = load_checkpoint(tmp_path / "checkpoints" / LAST)
    assert meta["epoch"] == 2 and "model.ff0" in tensors and any(k.startswith("optim.") for k in tensors)
    _, best = load_checkpoint(tmp_path / "checkpoints" / BEST)
    assert best["epoch"] == res.best_epoch
    # evaluate in uneven batches (10, 10, 10, 2) equals one pass over the whole split
    ev = evaluate(net, splits.test, cross_entropy(), 10)
    with torch.no_grad():
        out = net(splits.test)
    labels = torch.from_numpy(splits.test.labels)
    assert ev["accuracy"] == float((net.predict(out.readout) == labels).double().mean())
    assert ev["loss"] == pytest.approx(float(cross_entropy()(out.readout, labels)), rel=1e-6)
    assert ev["spikes_per_sample"] == pytest.approx(float(out.counts.sum()) / len(splits.test), rel=1e-6)


def test_non_finite_loss_stops_with_epoch_and_batch_and_keeps_checkpoint(tmp_path):
    splits, net = _tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    calls = {"n": 0}
    base = cross_entropy()

    def flaky(readout, labels):
        calls["n"] += 1
        loss = base(readout, labels)
        return loss * float("nan") if calls["n"] == 5 else loss  # 3 batches per epoch: epoch 2, batch 2

    with pytest.raises(NonFiniteLoss, match=r"epoch 2, batch 2.*last good checkpoint"):
        _fit(net, opt, splits.train, None, RunDir(tmp_path), loss_fn=flaky, epochs=3)
    _, meta = load_checkpoint(tmp_path / "checkpoints" / LAST)
    assert meta["epoch"] == 1
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


def test_exploding_finite_loss_warns_once_and_records_it_per_epoch(tmp_path, capsys):
    splits, net = _tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    calls = {"n": 0}
    base = cross_entropy()

    def exploding(readout, labels):  # 3 batches per epoch: from epoch 2 on, 1000x the loss (finite)
        calls["n"] += 1
        return base(readout, labels) * (1000.0 if calls["n"] > 3 else 1.0)

    rd = RunDir(tmp_path)
    _fit(net, opt, splits.train, None, rd, loss_fn=exploding, epochs=3)
    assert "warning" not in rd.metrics[0]
    for row in rd.metrics[1:]:
        assert "training is diverging" in row["warning"] and "Fix: lower optimizer.lr" in row["warning"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eventkit: warning:")]
    assert len(warnings) == 1 and "epoch 2" in warnings[0] and "first epoch's" in warnings[0]


def test_silent_fix_raises_input_weights_of_silent_neurons_only():
    _, net = _tiny(hidden=4)
    before = net.ff0.detach().clone()
    counts = torch.tensor([0.0, 3.0, 0.0, 1.0])
    assert _silent_fix(net, counts, 0.002) == 2
    diff = net.ff0.detach() - before
    assert torch.allclose(diff[[0, 2]], torch.full_like(diff[[0, 2]], 0.002), atol=1e-6)
    assert torch.all(diff[[1, 3]] == 0)
    assert _silent_fix(net, counts, 0.0) == 0


def test_split_validation_is_seeded_and_disjoint():
    data = yinyang(n_train=100, n_val=0, n_test=10).train
    a_train, a_val = split_validation(data, 0.2, seed=3)
    b_train, b_val = split_validation(data, 0.2, seed=3)
    assert len(a_val) == 20 and len(a_train) == 80
    assert np.array_equal(a_val.labels, b_val.labels) and np.array_equal(a_val.steps, b_val.steps)
    # sample k carries its index as its only spike's step: the two parts are disjoint and
    # together hold every sample once
    tagged = from_samples(
        [(np.array([k]), np.array([0])) for k in range(100)],
        np.arange(100) % 3,
        n_channels=1,
        n_steps=100,
        dt=1.0,
        n_classes=3,
    )
    train, val = split_validation(tagged, 0.2, seed=3)
    ids_train, ids_val = set(train.steps.tolist()), set(val.steps.tolist())
    assert len(ids_train) == 80 and len(ids_val) == 20
    assert not ids_train & ids_val and ids_train | ids_val == set(range(100))
    assert split_validation(tagged, 0.2, seed=4)[1].steps.tolist() != val.steps.tolist()  # seeded
    assert split_validation(data, 0.0, seed=0)[1] is None
    with pytest.raises(ValueError, match="val_fraction"):
        split_validation(data, 0.001, seed=0)


def test_empty_training_set_is_an_error(tmp_path):
    splits, net = _tiny()
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(ValueError, match="training set is empty"):
        _fit(net, opt, splits.train.subset([]), None, RunDir(tmp_path))


def test_early_stop_after_patience_epochs_without_a_better_val_accuracy(tmp_path, capsys):
    splits, net = _tiny()
    # lr 0 with a constant schedule: nothing changes, so epoch 1 stays the best
    opt = torch.optim.SGD(net.parameters(), lr=1e-12, momentum=0.0)
    res = _fit(net, opt, splits.train, splits.val, RunDir(tmp_path), epochs=10, patience=3)
    assert res.epochs == 4 and res.best_epoch == 1  # epochs 2, 3, 4 without improvement
    assert "early stop after epoch 4" in capsys.readouterr().out


def test_schedules_leave_a_fixed_lr_group_alone():
    """Delays train with their own constant step (network.delay_lr): warm-up and halving only
    scale the weights' group."""
    w, d = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([{"params": [w]}, {"params": [d], "lr": 0.1, "fixed_lr": True}], lr=1e-3)
    sched = WarmupEmaHalving(opt)
    sched.step_batch()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.05e-6)
    assert opt.param_groups[1]["lr"] == 0.1


def _refuse(what):
    raise AssertionError(f"unexpected non-finite value: {what}")


def test_a_step_in_a_group_of_one_is_the_whole_batch_objective_and_its_gradient():
    """The one training step, alone: the loss and the regulariser of the whole (shuffled) batch,
    the gradient summed over the engine's own sample groups, bit for bit what a hand-written
    forward, loss + regulariser and backward give (a dropped or doubled regulariser, labels
    out of the batch's order, or groups other than the engine's change a gradient bit)."""
    splits, net = _tiny()
    _, ref = _tiny()  # the same weights (same generator seed)
    data = splits.train
    idx = np.random.default_rng(3).permutation(len(data))[:21]  # 21 samples: groups of 2 and 3
    reg = RegularizerConfig(strength=1e-3, nu=2.0)
    result = forward_backward(net, data, idx, Objective(cross_entropy(), reg), DataParallel(), _refuse)

    batch = data.subset(idx)
    out = ref(batch)
    labels = torch.from_numpy(batch.labels)
    loss = cross_entropy()(out.readout, labels)
    (loss + spike_count_regularizer(out.counts, reg.strength, reg.nu)).backward()
    assert result.size == 21 and torch.equal(result.labels, labels)
    assert torch.equal(result.loss.detach(), loss.detach())
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert p.grad is not None and torch.equal(p.grad, q.grad), name


def test_a_group_of_one_splits_nothing_and_a_group_of_two_splits_by_sample_groups():
    offsets = np.array([0, 3, 5, 8], dtype=np.int64)  # a batch of 8 in 3 groups
    reduction, sizes = DataParallel().share(offsets)
    assert sizes == [8] and reduction.local_offsets().tolist() == [0, 3, 5, 8]
    gw, gd = np.ones((3, 4)), np.zeros((3, 1))
    w, d = reduction.combine(gw, gd)
    assert w is gw and d is gd  # alone: its groups are all of them
    for rank, want in ((0, [0, 3]), (1, [0, 2, 5])):  # 1 + 2 groups, in batch order
        reduction, sizes = DataParallel(rank, 2).share(offsets)
        assert sizes == [3, 5] and reduction.local_offsets().tolist() == want
    with pytest.raises(ValueError, match="rank 2"):
        DataParallel(2, 2)


def test_fit_in_one_process_trains_through_the_data_parallel_step(tmp_path, monkeypatch):
    """No single-process path of its own: every batch of a one-process fit is the shared step,
    in a group of one."""
    seen = []
    shared = step_module.forward_backward

    def spy(net, data, idx, objective, dp, on_non_finite):
        seen.append((len(idx), dp.world_size))
        return shared(net, data, idx, objective, dp, on_non_finite)

    monkeypatch.setattr(step_module, "forward_backward", spy)
    splits, net = _tiny()
    _fit(net, torch.optim.Adam(net.parameters(), lr=1e-3), splits.train, None, RunDir(tmp_path), epochs=1)
    assert seen == [(32, 1), (32, 1), (32, 1)]
