"""Data-pipeline benchmark: ``python -m eventkit_tonic.bench [--json PATH] [--quick]``.

What it measures, on synthetic stand-ins (the real files cannot be assumed present):

* **SSC-sized preprocessing** -- ``--samples`` (75,000, SSC's training set) samples of raw events
  in tonic's format (integer microseconds, channel 0..699; ``--events-per-sample`` each, drawn
  from the synthetic keyword model at 1 us resolution) written to an HDF5 file in the published
  SSC layout, then read and binned to 1 ms / 1000 steps / threshold 1 by the plugin's own
  reader (``eventkit_tonic.loader.preprocess_file``: the path a real SSC file takes). With
  ``--in-memory`` the HDF5 round trip is skipped and only the binning is timed.
* **cache** -- writing the result to the on-disk cache and loading it back.
* **per epoch** -- the ``shift`` augmentation on the SSC-sized set (SSC's recipe) and
  ``shift + blend`` on an SHD-sized set (8156 samples, SHD's recipe), plus cutting an epoch into
  batches of 32 (``SpikeData.subset`` per batch, as the trainer does).
* **engine reference** -- the median train step (forward + backward + Adam) of the SHD/SSC network
  (700 -> 256 recurrent LIF -> 35 LI, batch 32) on batches of this data, extrapolated to one
  epoch; the data overheads are reported as a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eventkit.plugin import augment
from eventkit.plugin import SpikeData, concat
from eventkit.plugin import cache as cache_mod
from eventkit.plugin import PreprocessConfig, events_to_spikes
from eventkit.plugin import synthetic_kws, synthetic_kws_samples, synthetic_kws_vocabulary

CHUNK = 4096


def raw_event_chunks(n_samples: int, events_per_sample: float, n_classes: int, seed: int):
    """Yield (times_us, units, lengths, labels) chunks of synthetic raw events, time-sorted per
    sample, at 1 microsecond resolution over 1 s."""
    rng = np.random.default_rng(seed)
    vocab = synthetic_kws_vocabulary(rng, n_classes=n_classes, n_syllables=30, syllables_per_word=3, n_formants=3,
                            n_channels=700)  # fmt: skip
    for start in range(0, n_samples, CHUNK):
        n = min(CHUNK, n_samples - start)
        d = synthetic_kws_samples(
            n, rng, vocab, n_channels=700, dt=0.001, duration=1000.0, rate=events_per_sample / 1000.0
        )
        yield d.steps.astype(np.int64), d.channels, np.diff(d.offsets), d.labels


def write_ssc_like_file(path: Path, n_samples: int, events_per_sample: float, seed: int) -> int:
    """An HDF5 file in the published SSC layout; returns the number of events written."""
    import h5py

    total = 0
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n_samples,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n_samples,), dtype=h5py.vlen_dtype(np.uint16))
        labels = f.create_dataset("labels", (n_samples,), dtype=np.uint16)
        f.create_dataset("extra/speaker", data=np.zeros(n_samples, dtype=np.uint16))
        start = 0
        for t_us, u, lengths, lab in raw_event_chunks(n_samples, events_per_sample, 35, seed):
            # seconds as float32; +0.5 us so that tonic's truncation to integer us lands back on t_us
            secs = ((t_us + 0.5) / 1e6).astype(np.float32)
            cuts = np.cumsum(lengths)[:-1]
            obj_t = np.empty(len(lengths), dtype=object)
            obj_u = np.empty(len(lengths), dtype=object)
            obj_t[:] = np.split(secs, cuts)
            obj_u[:] = np.split(u.astype(np.uint16), cuts)
            stop = start + len(lengths)
            times[start:stop] = obj_t
            units[start:stop] = obj_u
            labels[start:stop] = lab
            total += int(lengths.sum())
            start = stop
    return total


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the two differ."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def bench_preprocess(args, workdir: Path) -> tuple[SpikeData, dict]:
    cfg = PreprocessConfig(dt=1.0, duration=1000.0, count_threshold=1)
    # compile (or load) the binning kernel outside the timings
    events_to_spikes(np.array([0]), np.array([0]), [1], [0], n_sensor=700, n_classes=1, config=cfg)
    if args.in_memory:
        parts, seconds, cpu, events = [], 0.0, 0.0, 0
        for t_us, u, lengths, lab in raw_event_chunks(args.samples, args.events_per_sample, 35, args.seed):
            d, dt_s, c = _timed(lambda: events_to_spikes(t_us, u, lengths, lab, n_sensor=700, n_classes=35, config=cfg))
            parts.append(d)
            seconds, cpu = seconds + dt_s, cpu + c
            events += int(lengths.sum())
        data, dt_s, c = _timed(lambda: concat(parts))
        del parts
        return data, dict(
            preprocess_s=seconds + dt_s, preprocess_cpu_s=cpu + c, raw_events=events, source="in-memory events"
        )
    from .loader import preprocess_file

    path = workdir / "ssc_like_train.h5"
    events, write_s, _ = _timed(lambda: write_ssc_like_file(path, args.samples, args.events_per_sample, args.seed))
    data, seconds, cpu = _timed(lambda: preprocess_file(path, cfg, n_classes=35, meta={"dataset": "bench"}))
    size = path.stat().st_size
    path.unlink()
    return data, dict(
        preprocess_s=seconds,
        preprocess_cpu_s=cpu,
        raw_events=events,
        hdf5_write_s=write_s,
        hdf5_mb=size / 2**20,
        source="HDF5 file in the SSC layout, read by eventkit_tonic",
    )


def bench_epoch(data: SpikeData, augmentation, batch: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    augmentation(data.subset(np.arange(min(len(data), 64))), rng)  # compile / load kernels
    out, aug_s, aug_cpu = _timed(lambda: augmentation(data, rng))
    order = rng.permutation(len(out))

    def batches():
        n = 0
        for start in range(0, len(out), batch):
            n += out.subset(order[start : start + batch]).n_spikes
        return n

    _, batch_s, batch_cpu = _timed(batches)
    return dict(
        augment_s=aug_s,
        augment_cpu_s=aug_cpu,
        batching_s=batch_s,
        batching_cpu_s=batch_cpu,
        samples_out=len(out),
        spikes_out=out.n_spikes,
    )


def bench_engine(data: SpikeData, hidden: int, batch: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from eventkit.plugin import LI, LIF, EventpropNet, ExpWeightedMeanV, spike_count_regularizer

    net = EventpropNet(n_in=data.n_channels, n_out=data.n_classes, hidden=hidden, recurrent=True,
                       neuron=LIF(tau_mem=20.0, tau_syn=5.0, threshold=1.0), output=LI(tau_mem=20.0, tau_syn=5.0),
                       readout=ExpWeightedMeanV(), dt=data.dt, n_steps=data.n_steps,
                       init=dict(ff_mean=0.03, ff_std=0.01, rec_mean=0.0, rec_std=0.02, out_mean=0.0, out_std=0.03),
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    times, hidden_spikes = [], []
    for r in range(repeats + 1):
        b = data.subset(rng.integers(0, len(data), batch))
        t0 = time.perf_counter()
        out = net(b)
        loss = F.cross_entropy(out.readout, torch.from_numpy(b.labels)) + spike_count_regularizer(
            out.counts, 2.5e-9, 14.0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:  # the first step may compile / load kernels
            times.append(time.perf_counter() - t0)
            hidden_spikes.append(float(out.counts.detach().sum()) / batch)
    step = statistics.median(times)
    return dict(
        train_step_s=step,
        hidden_spikes_per_sample=statistics.median(hidden_spikes),
        epoch_s_estimate=step * int(np.ceil(len(data) / batch)),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventkit_tonic.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=75_000, help="SSC-sized set (SSC train: 75,466)")
    p.add_argument(
        "--events-per-sample",
        type=float,
        default=8000.0,
        help="raw events per sample (default: SHD-like ~8 per ms over 1 s)",
    )
    p.add_argument("--shd-samples", type=int, default=8156)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--engine-repeats", type=int, default=3, help="train steps timed (0: skip the engine)")
    p.add_argument("--in-memory", action="store_true", help="skip the HDF5 file, time binning only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="a small run (2000 / 500 samples, 1 engine step)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.shd_samples, args.engine_repeats = 2000, 500, min(args.engine_repeats, 1)
    for key in ("samples", "shd_samples", "batch", "hidden"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")

    results: dict = dict(machine=platform.platform(), cpus=os.cpu_count(), python=sys.version.split()[0],
                         samples=args.samples, events_per_sample=args.events_per_sample)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        data, pre = bench_preprocess(args, workdir)
        results["preprocess"] = dict(pre, spikes=data.n_spikes, samples_per_s=len(data) / pre["preprocess_s"])
        _, save_s, _ = _timed(lambda d=data: cache_mod.save(workdir / "entry", d))
        disk = sum(f.stat().st_size for f in (workdir / "entry").iterdir())
        del data
        (data, _), load_s, _ = _timed(lambda: cache_mod.load(workdir / "entry"))
        results["cache"] = dict(save_s=save_s, load_s=load_s, disk_mb=disk / 2**20)
        results["ssc_epoch_shift"] = bench_epoch(data, augment.shift(40), args.batch, args.seed)
        if args.engine_repeats:
            results["engine_ssc"] = bench_engine(data, args.hidden, args.batch, args.engine_repeats)
        del data
    shd = synthetic_kws(n_train=args.shd_samples, n_test=1, seed=args.seed).train
    results["shd_epoch_shift_blend"] = bench_epoch(
        shd, augment.compose([augment.shift(40), augment.blend(p_keep=0.5)]), args.batch, args.seed
    )
    if args.engine_repeats:
        eng = bench_engine(shd, args.hidden, args.batch, args.engine_repeats)
        eng["epoch_s_estimate"] = eng["train_step_s"] * int(np.ceil(2 * len(shd) / args.batch))  # blend doubles
        results["engine_shd"] = eng
        for key, ep, eng_key in (
            ("ssc", "ssc_epoch_shift", "engine_ssc"),
            ("shd", "shd_epoch_shift_blend", "engine_shd"),
        ):
            over = results[ep]["augment_s"] + results[ep]["batching_s"]
            results[f"{key}_overhead_fraction"] = over / results[eng_key]["epoch_s_estimate"]

    _print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _print_table(r: dict) -> None:
    pre, c = r["preprocess"], r["cache"]
    rows = [
        (
            "SSC-sized preprocessing",
            f"{r['samples']} samples, {pre['raw_events'] / 1e6:.0f} M events -> "
            f"{pre['spikes'] / 1e6:.0f} M spikes ({pre['source']}); "
            f"CPU {pre['preprocess_cpu_s']:.1f} s",
            pre["preprocess_s"],
        ),
        ("cache write", f"{c['disk_mb']:.0f} MiB", c["save_s"]),
        ("cache load", "", c["load_s"]),
    ]
    for key, label in (("ssc_epoch_shift", "SSC epoch: shift"), ("shd_epoch_shift_blend", "SHD epoch: shift + blend")):
        e = r[key]
        rows.append(
            (
                label,
                f"-> {e['samples_out']} samples, {e['spikes_out'] / 1e6:.0f} M spikes; "
                f"CPU {e['augment_cpu_s']:.1f} s",
                e["augment_s"],
            )
        )
        rows.append((f"{label.split(':')[0]}: batching", "subset() per batch of 32", e["batching_s"]))
    for key in ("engine_ssc", "engine_shd"):
        if key in r:
            e = r[key]
            rows.append((f"engine epoch estimate ({key[7:].upper()})",
                         f"{e['train_step_s']:.3f} s/batch, {e['hidden_spikes_per_sample']:.0f} hidden spikes/sample",
                         e["epoch_s_estimate"]))  # fmt: skip
    width = max(len(a) for a, _, _ in rows)
    print(f"{'stage'.ljust(width)}  {'seconds':>9}  detail")
    for a, b, s in rows:
        print(f"{a.ljust(width)}  {s:9.2f}  {b}")
    for key in ("ssc", "shd"):
        if f"{key}_overhead_fraction" in r:
            print(
                f"{key.upper()} per-epoch data overhead (augment + batching) / engine epoch: "
                f"{100 * r[f'{key}_overhead_fraction']:.1f} %"
            )


if __name__ == "__main__":
    raise SystemExit(main())
