"""Every default and threshold of the advisor, in one place.

Values that later issues calibrate say where they come from. Nothing here is
computed at import time and nothing changes global state.
"""

from __future__ import annotations

# --- Images -----------------------------------------------------------------
#: Default square input size of the network (pixels).
DEFAULT_IMAGE_SIZE = 224
#: torchvision's evaluation recipe: resize the short side to size * 256 / 224,
#: then centre-crop `size`. The ratio is kept for every size.
RESIZE_RATIO = 256 / 224
#: Refuse images with more pixels than this (Pillow's own bomb limit, 89.5 MP).
MAX_IMAGE_PIXELS = 89_478_485
#: File extensions read as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

# --- ImageNet normalisation (torchvision) -------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- Backbones ----------------------------------------------------------------
DEFAULT_BACKBONE = "mobilenet_v2"
#: torchvision's BatchNorm epsilon; Keras' default (1e-3) breaks the port.
TORCH_BN_EPSILON = 1e-5

# --- Dataset ------------------------------------------------------------------
#: A class needs at least this many usable images.
MIN_IMAGES_PER_CLASS = 2
#: Default fractions of the split (train gets the rest).
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 1337

# --- Dataset ingestion and the decode cache -----------------------------------
#: Names of the split sub-folders of a pre-split dataset (DATA_DIR/<split>/<class>/).
#: Each split name maps to the folder names accepted for it.
SPLIT_FOLDER_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
#: Bump when the decoded-image geometry or the cache layout changes.
DECODE_CACHE_VERSION = 1
#: Items handed to a decode worker at once (amortises the pool's overhead).
DECODE_CHUNK_SIZE = 64
#: Fewer images than this are decoded in the calling thread (no pool start-up).
DECODE_MIN_PARALLEL = 256
#: Draw a progress bar (when asked to) only for jobs running longer than this (s).
PROGRESS_DELAY_S = 2.0
