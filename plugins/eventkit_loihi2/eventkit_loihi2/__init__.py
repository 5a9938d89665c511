"""Intel Loihi 2 target for eventkit: 8-bit quantisation, a bit-accurate emulator of Lava's
fixed-point CUBA neurons, NetX (HDF5) export that lava-dl loads unchanged, a check against a real
Lava run, and a deployment report. Selected with ``target=loihi2``."""
