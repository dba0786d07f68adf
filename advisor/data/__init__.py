"""Ingestion: the folder walk, the split, regression targets, image decoding and the decode cache.

This layer reads the user's folder (never writes it) and turns it into frozen
records (:class:`Dataset`, :class:`DatasetSummary`) and cached pixel arrays.
It knows nothing about networks.
"""

from advisor.data.dataset import SPLITS, Dataset, DatasetSummary, ImageRecord, SkippedFile, scan_dataset
from advisor.data.decode_cache import DecodedImages, decode_dataset, decode_images
from advisor.data.images import ImageReadError, find_image_files, load_image
from advisor.data.targets import quantile_bins, read_targets, scan_targets

__all__ = [
    "SPLITS", "Dataset", "DatasetSummary", "DecodedImages", "ImageReadError", "ImageRecord",
    "SkippedFile", "decode_dataset", "decode_images", "find_image_files", "load_image",
    "quantile_bins", "read_targets", "scan_dataset", "scan_targets",
]
