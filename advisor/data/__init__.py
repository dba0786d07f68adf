"""Ingestion: the folder walk, the split, regression targets, image decoding and the decode cache.

This layer reads the user's folder (never writes it) and turns it into frozen
records (:class:`Dataset`, :class:`DatasetSummary`) and cached pixel arrays.
It knows nothing about networks. One concept per module: ``records`` (image,
skipped-file and summary records), ``dataset`` (the split :class:`Dataset`),
``scan`` (the folder walk), ``probe`` (header and hash of each file),
``split`` (the stratified split), ``summary``, ``targets`` (regression CSVs),
``images`` (decoding one file) and ``decode_cache``.
"""

from advisor.data.dataset import Dataset
from advisor.data.decode_cache import DecodedImages, decode_dataset, decode_images
from advisor.data.images import ImageReadError, find_image_files, load_image
from advisor.data.records import (
    SPLITS,
    DatasetSummary,
    DuplicateGroup,
    ImageRecord,
    SizeStats,
    SkippedFile,
)
from advisor.data.scan import scan_dataset
from advisor.data.targets import quantile_bins, read_targets, scan_targets

__all__ = [
    "SPLITS", "Dataset", "DatasetSummary", "DecodedImages", "DuplicateGroup", "ImageReadError",
    "ImageRecord", "SizeStats", "SkippedFile", "decode_dataset", "decode_images", "find_image_files",
    "load_image", "quantile_bins", "read_targets", "scan_dataset", "scan_targets",
]
