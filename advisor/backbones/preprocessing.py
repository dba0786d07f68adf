"""In-model preprocessing: every exported model takes raw uint8 RGB.

The geometry (resize the short side, centre-crop) happens when the image is
decoded (:mod:`advisor.data.images`); the model itself scales and normalises, so a
saved ``model.keras`` needs nothing but pixels.

A model built for a smaller input than its network's size (``input_size <
image_size``: the plan's ``decode_size``, for low-resolution folders) takes
images decoded at their native size instead: the central square of the short
side, ``input_size`` px (:func:`advisor.data.images.load_image` with
``resize_ratio=1``). Its graph then does the decode geometry itself
(:func:`upscale`): a bilinear resize to ``image_size * 256 / 224`` and a
centre crop of ``image_size``, the same central region as decoding at
``image_size`` would keep, so the decode cache stores small images and the
resampling runs on the device.
"""

from __future__ import annotations

from collections.abc import Callable

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


#: Name of the in-graph resizing layer of a model whose input is smaller than its network.
UPSCALE_LAYER = "upscale"
#: Name of the centre crop after it.
UPSCALE_CROP_LAYER = "upscale_crop"
#: Name of the cast to float32 before it.
UPSCALE_FLOAT_LAYER = "upscale_to_float"


def model_input(image_size: int, input_size: int | None = None,
                normalization: Callable[[keras.KerasTensor], keras.KerasTensor] | None = None,
                ) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Return a model's uint8 input and the tensor its network reads, at `image_size`.

    With `input_size` below `image_size` the input is ``(None, input_size,
    input_size, 3)`` and :func:`upscale` brings it to `image_size`; else the
    input itself is the network's tensor. `normalization` comes last, on the
    upscaled image: every backbone builder starts its graph with this call.

    Args:
        image_size: Height and width the network sees.
        input_size: Height and width of the model's input. Defaults to `None`
            (`image_size`).
        normalization: Adds the in-model normalisation layers:
            ``normalization(x) -> x`` (e.g. :func:`torchvision_normalization`).
            Defaults to `None` (none: the tensor to normalise is returned).

    Returns:
        ``(inputs, x)``: the ``keras.Input`` and the tensor the network reads.

    Example:
        >>> inputs, x = model_input(128, 28)
        >>> inputs.shape, inputs.dtype, x.shape
        ((None, 28, 28, 3), 'uint8', (None, 128, 128, 3))
        >>> inputs, x = model_input(96)
        >>> x is inputs
        True
        >>> inputs, x = model_input(96, normalization=torchvision_normalization)
        >>> x.dtype
        'float32'
    """
    if input_size is None or input_size == image_size:
        inputs = x = image_input(image_size)
    else:
        inputs = image_input(input_size)
        x = upscale(inputs, image_size)
    return inputs, x if normalization is None else normalization(x)


def upscale(inputs: keras.KerasTensor, image_size: int) -> keras.KerasTensor:
    """Apply the decode geometry inside the graph: resize to ``S * 256 / 224``, centre-crop ``S``.

    `inputs` are native-size images, the central square of each short side
    (:func:`advisor.data.images.load_image` with ``resize_ratio=1``). A
    bilinear ``Resizing`` (named ``"upscale"``, float32 output in 0-255, not
    rounded; after a cast to float32, ``"upscale_to_float"``) brings them to
    ``R = max(S, round(S * 256 / 224))`` and a
    ``Cropping2D`` (``"upscale_crop"``) keeps the central ``S`` x ``S``, with
    the offsets of :func:`~advisor.data.images.load_image`: the same pixels,
    to within one grey level of rounding, as decoding at `image_size` directly.

    Args:
        inputs: ``(None, s, s, 3)`` images.
        image_size: Height and width out, ``S``.

    Returns:
        The ``(None, S, S, 3)`` float32 crop.

    Example:
        >>> upscale(image_input(28), 128).shape
        (None, 128, 128, 3)
    """
    resized = max(image_size, int(round(image_size * config.RESIZE_RATIO)))
    before = int(round((resized - image_size) / 2.0))  # as load_image rounds its crop offset
    after = resized - image_size - before
    # A float input: on uint8, Resizing returns uint8 when run eagerly but float32 in a graph.
    x = keras.layers.Rescaling(1.0, name=UPSCALE_FLOAT_LAYER)(inputs)
    # training=False is kept in the graph: Resizing's own default (training=True) would
    # otherwise pass on to the later layers of a `model(x)` call and put BatchNormalization
    # and Dropout in training mode (fit still passes its training=True on).
    x = keras.layers.Resizing(resized, resized, interpolation="bilinear",
                              name=UPSCALE_LAYER)(x, training=False)
    return keras.layers.Cropping2D(((before, after), (before, after)), name=UPSCALE_CROP_LAYER)(x)


def decode_resize_ratio(model: keras.Model) -> float:
    """Return the ``resize_ratio`` a model's input images are decoded with.

    ``1.0`` when the model does the decode geometry itself (it holds the
    :data:`UPSCALE_LAYER` of :func:`upscale`, at any depth of nesting), else
    ``config.RESIZE_RATIO``: pass it to
    :func:`~advisor.data.images.load_image` with the model's input size.

    Example:
        >>> inputs, x = model_input(128, 28)
        >>> decode_resize_ratio(keras.Model(inputs, x))
        1.0
        >>> decode_resize_ratio(keras.Sequential([image_input(32), keras.layers.Rescaling(1.0)]))
        1.1428571428571428
    """
    return 1.0 if _has_layer(model, UPSCALE_LAYER, keras.layers.Resizing) else config.RESIZE_RATIO


def _has_layer(model, name: str, kind: type) -> bool:
    for layer in getattr(model, "layers", ()):
        if (layer.name == name and isinstance(layer, kind)) or (
                isinstance(layer, keras.Model) and _has_layer(layer, name, kind)):
            return True
    return False


def with_upscale(preprocessing: str, image_size: int, input_size: int | None) -> str:
    """Return a backbone's preprocessing summary, saying so when its model upscales its input.

    Example:
        >>> with_upscale("decode: resize, crop; in model: /255", 128, 28)  # doctest: +NORMALIZE_WHITESPACE
        'decode: resize, crop; in model: /255 (S = 128); the resize and crop run in the model,
         on a 28 px native decode (the central square of the short side)'
        >>> with_upscale("in model: /255", 96, None)
        'in model: /255'
    """
    if input_size is None or input_size == image_size:
        return preprocessing
    return (f"{preprocessing} (S = {image_size}); the resize and crop run in the model, on a "
            f"{input_size} px native decode (the central square of the short side)")


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
