"""Data: the spike format every layer shares, and the built-in datasets.

* :mod:`.spikes` -- :class:`SpikeData` (compressed rows of (step, channel) spikes on the dt grid)
  and :class:`DatasetSplits`; the engine and the augmentations read only this.
* :mod:`.yinyang`, :mod:`.synthetic_kws`, :mod:`.timing_lags` -- generated datasets.
* :mod:`.preprocess` -- tonic-style events to SpikeData; :mod:`.cache` -- build once, load after.
* :mod:`.builtins` -- registers the generated datasets with the plugin registry.

Recorded datasets (SHD, SSC) come from the ``eventkit_tonic`` plugin.
"""

from eventkit.data.spikes import DatasetSplits, SpikeData, concat, from_samples

__all__ = ["DatasetSplits", "SpikeData", "concat", "from_samples"]
