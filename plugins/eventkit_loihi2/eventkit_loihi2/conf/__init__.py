"""Config files of the loihi2 target (found by Hydra as pkg://eventkit_loihi2.conf)."""
