"""Datasets on the dt grid: built-in generators, event preprocessing and the on-disk cache.

* :func:`yinyang` -- the Yin-Yang benchmark, procedural.
* :func:`synthetic_kws` -- a SYNTHETIC SHD-shaped keyword-spotting set (no recordings).
* :func:`events_to_spikes` / :class:`PreprocessConfig` -- tonic-style events to SpikeData.
* :func:`cached` -- build once, load afterwards, keyed by config and source files.

Real recorded datasets (SHD, SSC) come from the ``eventkit_tonic`` plugin.
"""

from eventkit.datasets.cache import cached
from eventkit.datasets.preprocess import PreprocessConfig, events_to_spikes
from eventkit.datasets.synthetic_kws import synthetic_kws
from eventkit.datasets.yinyang import yinyang

__all__ = ["PreprocessConfig", "cached", "events_to_spikes", "synthetic_kws", "yinyang"]
