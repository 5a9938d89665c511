"""NIR (Neuromorphic Intermediate Representation) export and import for eventkit networks."""

from .conventions import Convention
from .export import to_nir, write_nir
from .norse_repair import fix_norse
from .reader import NirImportWarning, import_nir, network_from_nir, read_nir

__all__ = [
    "Convention",
    "to_nir",
    "write_nir",
    "network_from_nir",
    "import_nir",
    "read_nir",
    "fix_norse",
    "NirImportWarning",
]
