"""Keys of the activation caches (strategies.embeddings.activation_cache_file), issue 16.

A backbone that takes native-size images and upscales them in its graph
(``input_size < image_size``) computes other activations than one fed images
decoded at ``image_size``: their entries never mix (plumbing only: a tiny
fixed-weight model, nothing about accuracy).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from advisor.backbones.base import Backbone
from strategies.embeddings import activation_cache_file


def tiny_backbone() -> Backbone:
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, name="features")(x))
    return Backbone(name="tiny", image_size=8, model=model, feature_layer="features",
                    classifier_layer="features", blocks=(), bn_layers=(),
                    preprocessing="x / 255", weights="test:fixed")


def test_an_upscaling_backbone_has_its_own_entries():
    backbone = tiny_backbone()
    assert backbone.input_size == backbone.image_size == 8  # the default reads image_size
    images, rows = np.zeros((2, 8, 8, 3), np.uint8), np.arange(2)

    def entry(b: Backbone):
        return activation_cache_file("embeddings", b, images, rows, key="two-black", augmentation=None,
                                     augmentation_key=None, spec={"version": 1})

    upscaled = dataclasses.replace(backbone, image_size=32, upscaled_from=8)
    at_32 = dataclasses.replace(backbone, image_size=32)
    assert upscaled.input_size == 8 and at_32.input_size == 32
    assert len({entry(backbone), entry(upscaled), entry(at_32)}) == 3
