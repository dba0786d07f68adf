"""In-model preprocessing: every exported model takes raw uint8 RGB.

The geometry (resize the short side, centre-crop) happens when the image is
decoded (:mod:`advisor.data.images`); the model itself scales and normalises, so a
saved ``model.keras`` needs nothing but pixels.
"""

from __future__ import annotations

import keras

from advisor import config


def image_input(image_size: int) -> keras.KerasTensor:
    """Return the model input: ``(None, S, S, 3)`` uint8 RGB named ``"image"``.

    Args:
        image_size: Height and width in pixels.

    Example:
        >>> image_input(224).shape
        (None, 224, 224, 3)
    """
    return keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name="image")


def torchvision_normalization(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """Apply torchvision's ``/255`` then ImageNet mean/std normalisation as Keras layers.

    Args:
        inputs: uint8 RGB images.

    Returns:
        Normalised float images.

    Example:
        >>> x = torchvision_normalization(image_input(32))
    """
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    return keras.layers.Normalization(
        mean=list(config.IMAGENET_MEAN),
        variance=[s * s for s in config.IMAGENET_STD],
        name="imagenet_normalize",
    )(x)


TORCHVISION_PREPROCESSING = (
    "decode: resize short side to S*256/224 (bilinear), centre-crop S; "
    "in model: /255, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"
)
