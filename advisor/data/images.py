"""Read one image file into the network's uint8 RGB geometry.

One function decides how a file becomes pixels, so the decode cache, the
advisor, the exported model's ``predict`` command and the parity tests all see
exactly the same array.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from advisor import config
from advisor.errors import DatasetError


class ImageReadError(DatasetError):
    """One file could not be read as an image; the message says why."""


def _to_rgb(img: Image.Image, *, keep_gray: bool = False) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white.

    With ``keep_gray``, 8-bit grayscale stays ``"L"``: resizing one channel and
    then converting gives bit-identical pixels to resizing three, 3x cheaper.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I") and arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if keep_gray and img.mode == "L":
        return img
    return img.convert("RGB") if img.mode != "RGB" else img


def _resize_and_crop(img: Image.Image, size: int, ratio: float = config.RESIZE_RATIO) -> Image.Image:
    """Resize the short side to ``size * ratio``, then centre-crop ``size``."""
    short = max(size, int(round(size * ratio)))
    width, height = img.size
    if width <= height:
        new_w, new_h = short, max(short, int(short * height / width))
    else:
        new_w, new_h = max(short, int(short * width / height)), short
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    if (new_w, new_h) == img.size:
        if img.size == (size, size):
            return img  # a native-size decode of an image of that size: its own pixels
        return img.crop((left, top, left + size, top + size))
    # Resample only the crop window (its source-pixel box), not the whole image:
    # the same geometry as resize-then-crop to within 2 grey levels, and cheaper
    # (an ad-hoc timing of the resize step alone, 2026-11-23, not bench_decode:
    # Tux Paint stamps 1.9 -> 0.7 ms, 28 px PNGs 160 -> 95 us).
    sx, sy = width / new_w, height / new_h
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box)


def find_image_files(paths: Sequence[Path | str]) -> list[Path]:
    """Expand files and folders into image files (folders searched recursively, sorted).

    Hidden files and files without an image extension inside folders are left
    out; files named explicitly are kept whatever their extension.

    Args:
        paths: Image files or folders.

    Returns:
        The image files, in the order given (each folder's files sorted).

    Raises:
        DatasetError: A path does not exist, or nothing was found.

    Example:
        >>> files = find_image_files([digits_dir / "3", digits_dir / "7"])
        >>> len(files), [p.relative_to(digits_dir).as_posix() for p in files[:2]]
        (20, ['3/digit_0226.png', '3/digit_0705.png'])
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in config.IMAGE_EXTENSIONS)
        elif path.exists():
            files.append(path)
        else:
            raise DatasetError(f"{path} does not exist; pass image files or folders of images")
    if not files:
        raise DatasetError(f"no image files found in {', '.join(map(str, paths))}")
    return files


def open_image(path: Path | str) -> Image.Image:
    """Open an image file upright, fully decoded, as 8-bit RGB at its native size.

    The first frame of animated files is used; EXIF orientation is applied;
    grayscale, palette, RGBA, CMYK and 16-bit images become 8-bit RGB.

    Args:
        path: The image file.

    Returns:
        A Pillow image in mode ``"RGB"``.

    Raises:
        ImageReadError: The file is empty, truncated, not an image, too large
            (a decompression bomb), or unreadable; the message says which.

    Example:
        >>> img = open_image(next((digits_dir / "3").iterdir()))
        >>> img.mode, img.size
        ('RGB', (8, 8))
    """
    img = _read(Path(path), size=None)
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(path: Path | str, size: int = config.DEFAULT_IMAGE_SIZE, *,
               resize_ratio: float = config.RESIZE_RATIO) -> np.ndarray:
    """Read an image file as a ``(size, size, 3)`` uint8 RGB array.

    Follows torchvision's evaluation geometry: resize the short side to
    ``size * 256 / 224`` (bilinear), then centre-crop ``size`` x ``size``. Large
    JPEGs are downscaled while decoding (Pillow's draft mode), which is much
    cheaper than decoding at full size.

    ``resize_ratio=1`` keeps the central square of the short side instead,
    resized to `size` (an image whose short side is `size` is only cropped):
    the native-size decode of a model that resizes and crops inside its graph
    (a plan's ``decode_size``; :func:`advisor.backbones.preprocessing.upscale`).

    Args:
        path: The image file.
        size: Output height and width in pixels. Defaults to `224`.
        resize_ratio: Short side resized to ``size * resize_ratio`` before the
            centre crop. Defaults to `config.RESIZE_RATIO` (256 / 224).

    Returns:
        A ``(size, size, 3)`` ``uint8`` array.

    Raises:
        ImageReadError: The file cannot be used; the message says why.

    Example:
        >>> path = next((digits_dir / "3").iterdir())  # an 8x8 scan
        >>> pixels = load_image(path, 224)
        >>> pixels.shape, pixels.dtype
        ((224, 224, 3), dtype('uint8'))
        >>> native = load_image(path, 8, resize_ratio=1)  # the file's own pixels
        >>> native.shape, bool((native == np.asarray(open_image(path))).all())
        ((8, 8, 3), True)
    """
    if not resize_ratio >= 1:
        raise ValueError(f"Expected resize_ratio >= 1. Received: resize_ratio={resize_ratio!r}")
    img = _resize_and_crop(_read(Path(path), size=size, ratio=resize_ratio), size, resize_ratio)
    pixels = np.asarray(img, dtype=np.uint8)
    if pixels.ndim == 2:  # grayscale: resized on one channel, then copied to three
        pixels = np.stack((pixels, pixels, pixels), axis=-1)
    return pixels


def _read(path: Path, *, size: int | None, ratio: float = config.RESIZE_RATIO) -> Image.Image:
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > config.MAX_IMAGE_PIXELS:
                    raise ImageReadError(
                        f"{path}: {width}x{height} pixels is over the "
                        f"{config.MAX_IMAGE_PIXELS:,}-pixel limit (decompression bomb?)"
                    )
                if width < 1 or height < 1:
                    raise ImageReadError(f"{path}: image has no pixels ({width}x{height})")
                img.seek(0)
                if size is not None and img.format == "JPEG":
                    short = int(round(size * ratio))
                    img.draft("RGB", (short, short))
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img, keep_gray=True)
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: cannot decode ({exc})") from None


# Truncated files must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
