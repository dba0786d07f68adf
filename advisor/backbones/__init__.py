"""Pretrained backbones by name: ``get_backbone("mobilenet_v2")``, ``"efficientnet_lite0"``.

Each registered backbone builds a Keras model that takes raw ``uint8`` RGB
images of a square size and returns ImageNet logits, preprocessing included,
and says what later stages need from it: the pooled feature layer, the blocks
in order (for partial fine-tuning) and the BatchNormalization layers (for the
similarity measures).

A ported backbone is one module declaring a
:class:`~advisor.backbones.torch_port.PortSpec` (weights package, file and
sha256, normalisation, block layout, graph builder, state-dict key map) filed
with :func:`~advisor.backbones.torch_port.register_port`; import it below.

Names of the form ``keras:<ApplicationName>`` (e.g. ``keras:EfficientNetB0``)
use ``keras.applications`` with ``weights="imagenet"``, for users with
internet or a filled ``~/.keras/models``. Names of the form ``base:<path>``
(``advise --base``) use the user's own Keras model file: see
:mod:`advisor.backbones.user_model`.
"""

from advisor.backbones import efficientnet_lite, mobilenet_v2  # noqa: F401  (fills the registry)
from advisor.backbones.base import Backbone, Block
from advisor.backbones.registry import get_backbone, list_backbones, register_backbone

__all__ = ["Backbone", "Block", "get_backbone", "list_backbones", "register_backbone"]
