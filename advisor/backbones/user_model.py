"""``advise DATA_DIR --base MODEL``: the user's own Keras model as the backbone.

The model file (``.keras``, or a legacy ``.h5``) is loaded in safe mode, so it
cannot run code: Lambda layers are refused. Its contract is the one of the
``model.keras`` that ``advise`` itself exports, which therefore works as a base
too (a cars model adapted to trucks):

- one input of shape ``(None, S, S, 3)``: square RGB images, ``S`` fixed;
- pixel values ``0..255``: any scaling or normalisation is inside the model;
- a ``Dense`` classification layer at the end.

The graph is rebuilt flat (nested models, such as the ``"features"`` model of
an exported ``model.keras``, are unwrapped) from a ``uint8`` input, with fresh
copies of the layers and their weights, so every layer can be named, frozen
and probed. What the advisor needs is then read off the graph:

- the feature layer: the input of the last ``Dense`` layer, or the layer named
  with ``--feature-layer``;
- the blocks: the graph is cut where a single tensor carries everything
  forward (between two layers of a plain CNN, after each merge of a residual
  network); a block runs from one weighted layer (``Conv``, ``Dense``...) to
  the next cut before another weighted layer, and runs of them are merged
  evenly down to ``config.BASE_MODEL_MAX_BLOCKS``;
- the BatchNormalization layers: their stored moving statistics are those of
  the data the model was trained on, so the shift map measures how far a
  folder is from it. A model without any gets the probes only.

API:
    build_user_backbone(path, *, feature_layer=None) -> Backbone
    base_model_name(path, feature_layer=None) -> str
    parse_base_model_name(name) -> tuple[Path, str | None]
    file_digest(path) -> str
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import keras
import numpy as np

from advisor import config
from advisor.backbones.base import Backbone, Block
from advisor.backbones.checkpoint import sha256_of
from advisor.backbones.model_file import ModelFileError, load_class_names
from advisor.errors import BackboneError

logger = logging.getLogger(__name__)

#: File suffixes a base model may have.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
#: Name of the rebuilt model's uint8 input (as in every exported model).
INPUT_NAME = "image"
#: Name of the cast added when the user's model takes float input.
TO_FLOAT_LAYER = "image_to_float"
#: Probabilities are clipped to this before the log that turns them into logits.
PROBABILITY_FLOOR = 1e-12
#: Hex digits of the file's SHA-256 kept in ``Backbone.weights``.
DIGEST_CHARS = 12
#: Layers with weights that do not start a block (they follow a weighted layer).
_NORMALIZATION_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Normalization,
)
#: Candidate feature layers listed in an error.
_CANDIDATES_LISTED = 10
#: Separates the path from a feature layer named with ``--feature-layer``
#: (Keras layer names cannot contain ``/``, so the split is unambiguous).
LAYER_SEPARATOR = "#"


def base_model_name(path: Path | str, feature_layer: str | None = None) -> str:
    """Return the backbone name of a base model file: ``base:<absolute path>[#<layer>]``.

    Args:
        path: The model file.
        feature_layer: A layer named with ``--feature-layer``. Defaults to
            `None` (found automatically; not part of the name).

    Returns:
        The name; the same file (and layer) always gives the same name.

    Example:
        >>> base_model_name("/runs/cars/model.keras")
        'base:/runs/cars/model.keras'
    """
    name = config.BASE_MODEL_PREFIX + str(Path(path).expanduser().resolve())
    return name + (f"{LAYER_SEPARATOR}{feature_layer}" if feature_layer else "")


def parse_base_model_name(name: str) -> tuple[Path, str | None]:
    """Split a ``base:<path>[#<layer>]`` backbone name into the path and the layer.

    Args:
        name: A name from :func:`base_model_name`.

    Returns:
        ``(path, feature layer or None)``.

    Example:
        >>> parse_base_model_name("base:/runs/cars/model.keras#dense_1")
        (PosixPath('/runs/cars/model.keras'), 'dense_1')
    """
    spec = name.removeprefix(config.BASE_MODEL_PREFIX)
    path, separator, layer = spec.rpartition(LAYER_SEPARATOR)
    if not separator or "/" in layer or not layer or Path(spec).is_file():
        return Path(spec), None
    return Path(path), layer


def file_digest(path: Path | str) -> str:
    """Return the first ``DIGEST_CHARS`` hex digits of the file's SHA-256.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "model.keras"
        >>> _ = path.write_bytes(b"hello")
        >>> file_digest(path)
        '2cf24dba5fb0'
    """
    return sha256_of(path)[:DIGEST_CHARS]


def _refuse_h5_lambda(path: Path) -> None:
    """Refuse a legacy H5 model whose config holds a Lambda layer, before deserialising it."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as exc:
        raise BackboneError(
            f"--base {path} is not a readable HDF5 model ({exc}); pass a .keras or .h5 model "
            "file saved by Keras") from None
    if raw is None:
        raise BackboneError(
            f"--base {path} holds weights only (no model_config); save the whole model with "
            "model.save('model.keras')")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if '"Lambda"' in text:
        raise BackboneError(
            f"--base {path} contains a Lambda layer, whose code would run when loaded; "
            "replace it with built-in layers and save again as .keras")
    json.loads(text)  # a malformed config fails here, as a ValueError


def _load(path: Path) -> tuple[keras.Model, tuple[str, ...] | None]:
    """Load the model in safe mode, with the class names of an advise ``model.keras``."""
    if path.suffix in (".h5", ".hdf5"):
        _refuse_h5_lambda(path)
    elif not zipfile.is_zipfile(path):
        raise BackboneError(
            f"--base {path} is not a .keras archive (a zip file); pass a model saved with "
            "model.save('model.keras')")
    try:
        # Safe mode (the default, spelled out): no Lambda bytecode, built-in layers only.
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as exc:
        if "Lambda" in str(exc):
            raise BackboneError(
                f"--base {path} contains a Lambda layer, whose code would run when loaded; "
                "replace it with built-in layers and save it again") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"--base {path} could not be loaded as a Keras model in safe mode ({first[:160]}); "
            "pass a .keras or .h5 file saved with model.save() using built-in layers only"
        ) from None
    if not isinstance(model, keras.Model):
        raise BackboneError(f"--base {path} holds a {type(model).__name__}, not a Keras model")
    names = None
    if path.suffix == ".keras":
        try:
            names = load_class_names(path)
        except ModelFileError:
            names = None  # a model not written by advise: its classes are numbered
    return model, names


def _apply(layer: keras.layers.Layer, inputs):
    """Call `layer` on `inputs`, unwrapping nested Sequential and functional models."""
    if isinstance(layer, keras.Sequential):
        x = inputs
        for sub in layer.layers:
            x = _apply(sub, x)
        return x
    if isinstance(layer, keras.Model):
        return _inline(layer, inputs)
    return layer(inputs)


def _inline(model: keras.Model, inputs):
    """Run a functional `model`'s graph on `inputs` with its own layers, nested models inlined.

    ``keras.models.clone_model`` walks the graph: ``clone_function`` keeps each
    layer (no copy) and ``call_function`` calls it on the new tensors, inlining
    nested models through :func:`_apply`. Each call's result is recorded
    against the layer's first (original) call-site outputs, from which the
    model's outputs are read: the model ``clone_model`` returns is built on the
    intermediate `inputs`, so Keras re-creates its tensors, and it is dropped.
    A layer called twice in one graph is recorded as ambiguous.
    """
    if getattr(model, "inputs", None) is None:
        raise BackboneError(
            f"The base model's part {model.name!r} is a subclassed model; only functional "
            "and Sequential models can be used with --base")
    results: dict[int, object] = {}
    called: set[int] = set()

    def call(op, *args, **kwargs):
        if isinstance(op, keras.Model):
            outputs = _apply(op, args[0] if len(args) == 1 else list(args))
        else:
            outputs = op(*args, **kwargs)
        # keras.Operation's own `output` (a Model's is its graph's): the first call site's.
        originals = keras.tree.flatten(keras.Operation.output.fget(op))
        for original, new in zip(originals, keras.tree.flatten(outputs)):
            results[id(original)] = None if id(op) in called else new
        called.add(id(op))
        return outputs

    tensors = keras.tree.pack_sequence_as(model.input, keras.tree.flatten(inputs))
    keras.models.clone_model(model, input_tensors=tensors, clone_function=lambda op: op,
                             call_function=call)

    def output(tensor):
        if results.get(id(tensor)) is None:
            raise BackboneError(
                f"The base model's part {model.name!r} calls the layer giving its output more "
                "than once; give each call its own layer and save it again")
        return results[id(tensor)]

    return keras.tree.map_structure(output, model.output)


def _check_input(model: keras.Model, path: Path) -> int:
    """Return the model's square input size, or raise a one-line error."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BackboneError(
            f"--base {path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "expected one image input and one class output")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise BackboneError(
            f"--base {path} takes input of shape {shape}; expected square RGB images "
            "(None, S, S, 3) with a fixed S: build it on keras.Input((S, S, 3))")
    return int(shape[1])


def _rebuild(model: keras.Model, image_size: int) -> keras.Model:
    """Return the model flat, from a uint8 input, with its own copy of every layer."""
    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name=INPUT_NAME)
    x = inputs
    if model.inputs[0].dtype != "uint8":
        x = keras.layers.Rescaling(1.0, name=TO_FLOAT_LAYER)(x)  # a cast to float32
    outputs = _apply(model, x)
    try:
        shared = keras.Model(inputs, outputs, name="base_model_shared")
    except ValueError as exc:  # Keras: 'The name "x" is used 2 times in the model...'
        if "is used" not in str(exc):
            raise
        raise BackboneError(
            f"The base model has layers of the same name in its nested models ({exc}); give "
            "its layers unique names and save it again") from None
    # The layers above are the loaded model's, with two call sites each; a clone
    # gives each layer one, so `layer.output` is unambiguous for the probes.
    flat = keras.models.clone_model(shared)
    flat.set_weights(shared.get_weights())
    return flat


def _producers(model: keras.Model) -> dict[int, keras.Operation]:
    """Map ``id(tensor)`` of every operation output to the operation."""
    produced = {}
    for op in model.operations:
        for tensor in keras.tree.flatten(op.output):
            produced[id(tensor)] = op
    return produced


def _parents(op, produced) -> list:
    if isinstance(op, keras.layers.InputLayer):
        return []
    return [produced[id(t)] for t in keras.tree.flatten(op.input) if id(t) in produced]


def _is_weighted(op) -> bool:
    return (isinstance(op, keras.layers.Layer) and bool(op.weights)
            and not isinstance(op, _NORMALIZATION_LAYERS))


def _graph_blocks(ops: list, produced, *, max_blocks: int) -> tuple[Block, ...]:
    """Cut `ops` (topological order, up to the feature layer) into blocks."""
    index = {id(op): i for i, op in enumerate(ops)}
    last_use = list(range(len(ops)))
    for i, op in enumerate(ops):
        for parent in _parents(op, produced):
            if id(parent) in index:
                last_use[index[id(parent)]] = max(last_use[index[id(parent)]], i)
    # A cut after op i passes a single tensor: nothing earlier is used later.
    cut_after, reach = [], -1
    for i in range(len(ops)):
        cut_after.append(reach <= i)
        reach = max(reach, last_use[i])
    units: list[list] = []
    for i, op in enumerate(ops):
        starts = _is_weighted(op) and (not units or (i > 0 and cut_after[i - 1]))
        if starts:
            units.append([op])
        elif units:
            units[-1].append(op)
        # weightless layers before the first weighted one are preprocessing: no block
    if not units:
        return ()
    # Merge consecutive units evenly (by count) into at most `max_blocks` blocks.
    bounds = np.linspace(0, len(units), min(max_blocks, len(units)) + 1).round().astype(int)
    groups = [sum(units[a:b], []) for a, b in zip(bounds[:-1], bounds[1:])]
    blocks = []
    for i, group in enumerate(groups):
        layers = tuple(op.name for op in group if isinstance(op, keras.layers.Layer))
        blocks.append(Block(f"block_{i:02d}", layers, layers[-1]))
    return tuple(blocks)


def _feature_candidates(ops: list, classifier: str) -> list[str]:
    names = [op.name for op in ops if isinstance(op, keras.layers.Layer)
             and not isinstance(op, keras.layers.InputLayer) and op.name != classifier
             and len(op.output.shape) in (2, 4)]
    return names[-_CANDIDATES_LISTED:]


def _check_path(path: Path | str) -> Path:
    """Return the model file's absolute path, or raise if it is missing or not a model file."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise BackboneError(
            f"--base {path} does not exist or is not a file; pass a .keras or .h5 model file")
    if path.suffix not in MODEL_SUFFIXES:
        raise BackboneError(
            f"--base {path} has suffix {path.suffix!r}; expected a Keras model file ending in "
            f"{', '.join(MODEL_SUFFIXES)} (save it with model.save('model.keras'))")
    return path


def _classifier(ops: list, path: Path) -> keras.layers.Dense:
    """Return the last Dense layer: the model's classifier."""
    dense = [op for op in ops if isinstance(op, keras.layers.Dense)]
    if not dense:
        raise BackboneError(
            f"--base {path} has no Dense layer; expected a classifier ending in a Dense layer")
    return dense[-1]


def _feature(ops: list, produced, classifier: keras.layers.Dense, feature_layer: str | None,
             path: Path) -> keras.layers.Layer:
    """Return the feature layer: the one named, else the layer feeding the classifier."""
    if feature_layer is None:
        parents = _parents(classifier, produced)
        if len(parents) != 1 or not isinstance(parents[0], keras.layers.Layer) or isinstance(
                parents[0], keras.layers.InputLayer):
            raise BackboneError(
                f"The input of {path}'s last Dense layer {classifier.name!r} is not a layer's "
                f"output; name the feature layer with --feature-layer (candidates: "
                f"{', '.join(_feature_candidates(ops, classifier.name))})")
        feature = parents[0]
    else:
        feature = next((op for op in ops if op.name == feature_layer
                        and isinstance(op, keras.layers.Layer)), None)
        if feature is None:
            raise BackboneError(
                f"--base {path} has no layer {feature_layer!r}. Candidates: "
                f"{', '.join(_feature_candidates(ops, classifier.name))}. "
                f"Received: --feature-layer {feature_layer}")
    if len(feature.output.shape) not in (2, 4):
        raise BackboneError(
            f"Layer {feature.name!r} of {path} gives {len(feature.output.shape)}-D output; the "
            "feature layer must give (N, D) or (N, H, W, C). Choose another with --feature-layer")
    return feature


def _blocks(flat: keras.Model, ops: list, produced, feature: keras.layers.Layer,
            path: Path) -> tuple[Block, ...]:
    """Return the blocks up to the feature layer; warn if no layer scales the pixels first."""
    blocks = _graph_blocks(ops[:ops.index(feature) + 1], produced,
                           max_blocks=config.BASE_MODEL_MAX_BLOCKS)
    if not blocks:
        raise BackboneError(
            f"--base {path} has no weighted layer (Conv, Dense...) up to {feature.name!r}; "
            "there is nothing to transfer")
    if not any(isinstance(op, (keras.layers.Rescaling, keras.layers.Normalization))
               for op in ops[:ops.index(flat.get_layer(blocks[0].layers[0]))]):
        logger.warning("The base model %s has no Rescaling or Normalization layer before its "
                       "first weighted layer: it will see pixel values 0..255 as they are.", path)
    return blocks


def _logits_model(flat: keras.Model, produced) -> tuple[keras.Model, int]:
    """Return the model giving logits (log of a softmax output) and its number of outputs."""
    outputs = flat.outputs[0]
    n_outputs = int(outputs.shape[-1])
    last = produced[id(outputs)]
    if isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) is keras.activations.softmax:
        # The probes read logits; log-probabilities are logits up to a constant.
        outputs = keras.ops.log(keras.ops.maximum(outputs, PROBABILITY_FLOOR))
    return keras.Model(flat.inputs, outputs, name="base_model"), n_outputs


def build_user_backbone(path: Path | str, *, feature_layer: str | None = None) -> Backbone:
    """Build a :class:`Backbone` from the user's Keras model file.

    Args:
        path: A ``.keras`` (e.g. the ``model.keras`` of an earlier ``advise``
            run) or legacy ``.h5`` model file: RGB ``(None, S, S, 3)`` input
            with pixel values 0..255, a ``Dense`` classifier at the end.
        feature_layer: Layer whose output the new head reads. Defaults to
            `None` (the input of the last ``Dense`` layer).

    Returns:
        The backbone, named ``base:<absolute path>`` (plus ``#<layer>`` when
        `feature_layer` is given), with ``weights="user:<sha256 prefix>"`` so
        caches notice a changed file, and ``resizable=False``: its input size
        is the model's.

    Raises:
        BackboneError: The file is missing or cannot be loaded in safe mode,
            has a Lambda layer, takes other inputs than square RGB images, has
            no ``Dense`` layer, or has no layer `feature_layer` (the message
            lists candidates).

    Example:
        >>> import tempfile
        >>> from advisor.backbones.model_file import save_model
        >>> inputs = keras.Input((32, 32, 3), dtype="uint8")
        >>> x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
        >>> x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
        >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(x))
        >>> path = save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["cat", "dog"])
        >>> backbone = build_user_backbone(path)
        >>> backbone.feature_layer, len(backbone.blocks), backbone.image_size, backbone.class_names
        ('pool', 1, 32, ('cat', 'dog'))
    """
    path = _check_path(path)
    loaded, class_names = _load(path)
    image_size = _check_input(loaded, path)
    flat = _rebuild(loaded, image_size)
    del loaded
    ops = [op for op in flat.operations if not isinstance(op, keras.layers.InputLayer)]
    produced = _producers(flat)
    classifier = _classifier(ops, path)
    feature = _feature(ops, produced, classifier, feature_layer, path)
    blocks = _blocks(flat, ops, produced, feature, path)
    model, n_outputs = _logits_model(flat, produced)
    if class_names is None or len(class_names) != n_outputs:
        class_names = tuple(f"class {i}" for i in range(n_outputs))
    return Backbone(
        name=base_model_name(path, feature_layer),
        image_size=image_size,
        model=model,
        feature_layer=feature.name,
        classifier_layer=classifier.name,
        blocks=blocks,
        bn_layers=tuple(op.name for op in ops if isinstance(op, keras.layers.BatchNormalization)),
        preprocessing="in model: the base model's own layers (pixel values 0-255 in)",
        weights=f"user:{file_digest(path)}",
        class_names=tuple(class_names),
        resizable=False,
    )
