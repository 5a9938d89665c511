"""Hook implementations: the ``shd`` and ``ssc`` datasets and this package's config directory."""

from __future__ import annotations

from eventkit.plugin import hookimpl


@hookimpl
def register_datasets(register):
    from eventkit_tonic.shd import shd
    from eventkit_tonic.ssc import ssc

    register("shd", shd, description="Spiking Heidelberg Digits (tonic): 700 channels, 20 classes")
    register("ssc", ssc, description="Spiking Speech Commands (tonic): 700 channels, 35 classes")


@hookimpl
def register_config_dirs(register):
    register("pkg://eventkit_tonic.conf")
