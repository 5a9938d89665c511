"""Fixtures shared by the tonic plugin's tests: tiny SHD / SSC files in the published layout."""

from fixtures_shd import shd_root, ssc_root  # noqa: F401  (fixtures for every test module here)
