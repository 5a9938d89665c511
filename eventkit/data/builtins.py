"""Registers the core's own datasets through the ordinary plugin hooks."""

from __future__ import annotations

from eventkit.data.synthetic_kws import synthetic_kws
from eventkit.data.timing_lags import timing_lags
from eventkit.data.yinyang import yinyang
from eventkit.base.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register("yinyang", yinyang, description="Yin-Yang (Kriener et al.): 5 latency inputs, 3 classes")
    register(
        "synthetic_kws",
        synthetic_kws,
        description="SYNTHETIC SHD-shaped keyword spotting: 700 channels, 1 s, 20 classes",
    )
    register(
        "timing_lags",
        timing_lags,
        description="SYNTHETIC timing-only: classes differ only in lags between channel groups",
    )
