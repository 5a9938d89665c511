"""eventkit plugin: the Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC).

Registers the datasets ``shd`` and ``ssc`` and ships their configs plus the authors'
experiments (``+experiment=shd``, ``ssc``, ``shd_fast``). Files are found, downloaded and laid
out as tonic does (``<root>/SHD/shd_train.h5``); events are turned into spike lists on the dt grid
once and cached under ``<root>/preprocessed``. The root is ``dataset.root``, else the
``EVENTKIT_DATA`` environment variable, else ``~/.cache/eventkit/data``.
"""

from eventkit_tonic.files import DatasetCorruptError, DatasetUnavailableError, default_root
from eventkit_tonic.shd import shd
from eventkit_tonic.ssc import ssc

__all__ = ["DatasetCorruptError", "DatasetUnavailableError", "default_root", "shd", "ssc"]
