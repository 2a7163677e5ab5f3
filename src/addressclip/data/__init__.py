"""Datasets as files: image readers, the parquet manifest, capture-location splits and `build`."""
