"""assay: a self-hostable Python package index that knows where every file came from."""

__version__ = "0.1.0"
