"""Exchange formats: spiking networks to and from NIR (the neuromorphic intermediate
representation). This package sits above models/ (it exports them) and below cli/."""

from neurojoule.export.nir_export import export_nir, format_summary, summarize
from neurojoule.export.nir_import import NIRNetwork, import_nir, read_nir, write_nir
from neurojoule.export.nir_neurons import nir_threshold, our_threshold

__all__ = [
    "NIRNetwork",
    "export_nir",
    "format_summary",
    "import_nir",
    "nir_threshold",
    "our_threshold",
    "read_nir",
    "summarize",
    "write_nir",
]
