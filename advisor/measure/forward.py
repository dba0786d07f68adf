"""The one forward pass: every activation statistic the profile needs, per batch.

:func:`build_probe_model` turns a :class:`~advisor.backbones.Backbone` into one
multi-output Keras model (sharing the backbone's layers and weights) that
returns, for a batch of uint8 images:

- ``logits``: the ImageNet head, ``(B, 1000)`` (a base model's own classes);
- ``features``: the pooled bottleneck features, ``(B, D)``;
- ``block:<name>``: global-average-pooled outputs of a few intermediate blocks;
- ``bn_mean`` / ``bn_sq``: for every BatchNormalization layer, each image's
  per-channel mean and mean of squares of the layer's *input*, concatenated
  over layers into ``(B, sum of channels)``. The reductions are ``keras.ops``
  inside the graph, so only ``2 x sum of channels`` numbers per image leave
  it, and they run only on batches whose ``with_moments`` flag input is set
  (:func:`embed` sets it on about ``config.MOMENT_IMAGES`` images). A network
  without BatchNormalization layers (a ``--base`` model may have none) has no
  BN outputs, and its profile no shift map.

:func:`embed` runs that model over a uint8 array batch by batch (the last batch
padded to a fixed shape, so the graph is traced once) and keeps only the small
per-image arrays, summing the BN moments on the host: memory stays bounded
whatever the sample size. :func:`measure_dataset` draws the stratified sample,
decodes it through the decode cache, embeds it and computes the
:class:`~advisor.measure.profile.DatasetProfile`.

API:
    probe_blocks(backbone, fractions=config.PROBE_BLOCK_FRACTIONS) -> tuple[Block, ...]
    build_probe_model(backbone, *, blocks=None) -> keras.Model
    embed(backbone, images, *, rows=None, batch_size=config.EMBED_BATCH_SIZE,
          blocks=None, moment_images=config.MOMENT_IMAGES, seed=config.DEFAULT_SEED,
          progress=False) -> Activations
    Activations (frozen): logits, features, block_features, bn_layers,
        bn_channels, bn_mean, bn_var, n_images, n_moment_images
    bn_reference(backbone) -> dict[str, tuple[np.ndarray, np.ndarray]]
    stratified_sample(labels, cap, *, seed) -> np.ndarray
    profile_activations(activations, labels, *, backbone, summary, class_names,
                        seed) -> DatasetProfile
    measure_dataset(dataset, backbone, *, sample_cap=config.SAMPLE_CAP,
                    seed=config.DEFAULT_SEED, progress=False) -> DatasetProfile
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from advisor import config
from advisor.backbones import Backbone, Block
from advisor.data import Dataset, DatasetSummary
from advisor.data.decode_cache import decode_images
from advisor.errors import DatasetError
from advisor.measure.feature_store import pixel_digests, save_features
from advisor.measure.head import head_stats
from advisor.measure.probes import probe_accuracies
from advisor.measure.profile import NO_BATCHNORM_NO_PROBES_NOTE, NO_BATCHNORM_NOTE, DatasetProfile
from advisor.measure.shift import shift_map
from advisor.measure.similarity import similarity_score
from advisor.progress import progress_bar

logger = logging.getLogger(__name__)

LOGITS = "logits"
FEATURES = "features"
BN_MEAN = "bn_mean"
BN_SQ = "bn_sq"
BLOCK_PREFIX = "block:"
#: Name of the probe model's second input: a (B, 1) flag, set on batches whose
#: BN moments are reduced (see :func:`embed`).
MOMENTS_FLAG = "with_moments"
#: Splits the advisor samples from; the test split is kept for judging the plan.
ADVICE_SPLITS = ("train", "val")


@dataclass(frozen=True, slots=True, eq=False)
class Activations:
    """What one pass over a sample keeps: small per-image arrays and BN moments.

    Args:
        logits: ``(N, K)`` float32 logits of the backbone's head (ImageNet: K = 1000).
        features: ``(N, D)`` float32 pooled bottleneck features.
        block_features: Block name -> ``(N, C)`` float32 pooled block output,
            in graph order.
        bn_layers: Names of the BatchNormalization layers, in graph order.
        bn_channels: Channels of each BN layer (aligned with `bn_layers`).
        bn_mean: ``(sum of channels,)`` float64 mean of each BN input channel
            over all images and positions.
        bn_var: ``(sum of channels,)`` float64 variance of the same.
        n_images: Number of images embedded.
        n_moment_images: Number of images the BN moments were reduced over
            (all of them up to ``config.MOMENT_IMAGES``; 0 without BN layers).
    """

    logits: np.ndarray
    features: np.ndarray
    block_features: dict[str, np.ndarray]
    bn_layers: tuple[str, ...]
    bn_channels: tuple[int, ...]
    bn_mean: np.ndarray
    bn_var: np.ndarray
    n_images: int
    n_moment_images: int = 0

    def bn_moments(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Return ``{bn layer: (channel means, channel variances)}``.

        Example:
            >>> from advisor.data import scan_dataset
            >>> decoded = decode_images(scan_dataset(digits_dir).files("val"), backbone.image_size)
            >>> activations = embed(backbone, decoded.images, rows=decoded.rows)
            >>> mean, var = activations.bn_moments()["bn_Conv1"]
            >>> mean.shape, var.shape, bool((var >= 0).all())
            ((32,), (32,), True)
        """
        bounds = np.cumsum((0,) + self.bn_channels)
        return {
            name: (self.bn_mean[a:b], self.bn_var[a:b])
            for name, a, b in zip(self.bn_layers, bounds[:-1], bounds[1:])
        }


def probe_blocks(
    backbone: Backbone, fractions: Sequence[float] = config.PROBE_BLOCK_FRACTIONS
) -> tuple[Block, ...]:
    """Pick the intermediate blocks whose pooled outputs the probes read.

    Block ``i`` of ``n`` sits at depth ``i / (n - 1)``; for each fraction the
    nearest block strictly between the stem and the last block is taken.

    Args:
        backbone: The backbone.
        fractions: Depths in (0, 1). Defaults to `config.PROBE_BLOCK_FRACTIONS`.

    Returns:
        Distinct blocks in graph order.

    Example:
        >>> [b.name for b in probe_blocks(backbone)]
        ['block_8', 'block_12', 'block_14']
    """
    n = len(backbone.blocks)
    if n < 3:
        return ()
    picked = sorted({min(n - 2, max(1, round(f * (n - 1)))) for f in fractions})
    return tuple(backbone.blocks[i] for i in picked)


def build_probe_model(backbone: Backbone, *, blocks: Sequence[Block] | None = None) -> keras.Model:
    """Build the multi-output model of the one forward pass.

    It shares the backbone's layers (no copy of the weights) and returns a dict
    with ``logits``, ``features``, ``block:<name>`` for each of `blocks`, and
    ``bn_mean`` / ``bn_sq``: per image, the per-channel mean and mean of squares
    over positions of each BatchNormalization layer's input, concatenated in
    ``backbone.bn_layers`` order.

    Args:
        backbone: The backbone.
        blocks: Blocks whose outputs are pooled. Defaults to `None`
            (:func:`probe_blocks`).

    Returns:
        A functional ``keras.Model``.

    Example:
        >>> model = build_probe_model(backbone)
        >>> sorted(model.output)[:2]
        ['block:block_12', 'block:block_14']
    """
    model = backbone.model
    blocks = probe_blocks(backbone) if blocks is None else tuple(blocks)
    outputs = {
        LOGITS: model.output,
        FEATURES: _pooled(model.get_layer(backbone.feature_layer).output),
    }
    for block in blocks:
        outputs[BLOCK_PREFIX + block.name] = _pooled(model.get_layer(block.output).output)
    inputs = list(model.inputs)
    if backbone.bn_layers:  # a network without BatchNormalization has no shift map
        flag = keras.Input(shape=(1,), name=MOMENTS_FLAG)
        inputs.append(flag)
        means, squares = [], []
        for name in backbone.bn_layers:
            mean, square = _ChannelMoments(name=f"{name}_moments")(model.get_layer(name).input, flag)
            means.append(mean)
            squares.append(square)
        outputs[BN_MEAN] = keras.ops.concatenate(means, axis=-1)
        outputs[BN_SQ] = keras.ops.concatenate(squares, axis=-1)
    return keras.Model(inputs, outputs, name=f"{backbone.model_name}_probe")


class _ChannelMoments(keras.layers.Layer):
    """Per image, the per-channel mean and mean of squares of `x` over positions.

    Computed only when the batch's flag (``flag[0, 0] > 0``) is set, zeros
    otherwise: a ``keras.ops.cond`` runs one branch, so batches that do not
    need the moments skip the reductions without a second traced function.
    """

    def call(self, x, flag):
        x = keras.ops.cast(x, "float32")
        channels = x.shape[-1]

        def reduce():
            return _pooled(x), _pooled(keras.ops.square(x))

        def skip():
            zeros = keras.ops.zeros((keras.ops.shape(x)[0], channels), dtype="float32")
            return zeros, zeros

        return keras.ops.cond(flag[0, 0] > 0, reduce, skip)


def _pooled(tensor):
    """Average a ``(B, ..., C)`` output over its positions into ``(B, C)``."""
    if len(tensor.shape) <= 2:
        return tensor
    return keras.ops.mean(tensor, axis=tuple(range(1, len(tensor.shape) - 1)))


def embed(
    backbone: Backbone,
    images: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    batch_size: int = config.EMBED_BATCH_SIZE,
    blocks: Sequence[Block] | None = None,
    moment_images: int = config.MOMENT_IMAGES,
    seed: int = config.DEFAULT_SEED,
    progress: bool = False,
) -> Activations:
    """Run the one forward pass over `images`, keeping what the profile needs.

    Batches are read from `images` (e.g. a decode-cache memory map) one at a
    time; the last one is padded to `batch_size` so the compiled function is
    traced once, and the padding is dropped. BN moments are summed on the host
    in float64, so memory does not grow with the number of images beyond the
    small per-image arrays (logits, pooled features).

    The BN moments come from at most `moment_images` images: with more rows,
    the batches run in a seeded random order and only the first ones, about
    `moment_images` images, reduce the moments (the others skip the reductions
    inside the same traced function). Per-channel means and variances of a
    set are stable long before 2,000 images, and the reductions are what the
    pass costs beyond a bare forward pass on the TensorFlow CPU backend.

    Args:
        images: ``(N, S, S, 3)`` uint8 array with ``S == backbone.input_size``
            (``image_size`` unless the network upscales its input).
        rows: Rows of `images` to embed, in order. Defaults to `None` (all).
        batch_size: Images per forward pass. Defaults to `config.EMBED_BATCH_SIZE`.
        blocks: Intermediate blocks to pool. Defaults to `None` (:func:`probe_blocks`).
        moment_images: Images whose BN moments are reduced, rounded up to
            whole batches. Defaults to `config.MOMENT_IMAGES`.
        seed: Seed of the batch order when `moment_images` < the rows.
            Defaults to `config.DEFAULT_SEED`.
        progress: Show a progress bar for long runs. Defaults to `False`.

    Returns:
        The :class:`Activations`, rows in the order of `rows`.

    Raises:
        DatasetError: No rows, or images of the wrong shape.

    Example:
        >>> from advisor.data import scan_dataset
        >>> decoded = decode_images(scan_dataset(digits_dir).files("train"), backbone.image_size)
        >>> acts = embed(backbone, decoded.images, rows=decoded.rows)
        >>> acts.features.shape, acts.logits.shape, list(acts.block_features), acts.n_moment_images
        ((60, 1280), (60, 1000), ['block_8', 'block_12', 'block_14'], 60)
    """
    rows = _check_embed_inputs(backbone, images, rows, moment_images)
    n = len(rows)
    blocks = probe_blocks(backbone) if blocks is None else tuple(blocks)
    model = build_probe_model(backbone, blocks=blocks)
    with_moments = bool(backbone.bn_layers)
    batch_size = max(1, min(batch_size, n))
    order, moment_batches = _batch_order(n, batch_size, moment_images, seed)
    flags = [np.full((batch_size, 1), value, dtype="float32") for value in (0.0, 1.0)]
    kept: dict[str, list[np.ndarray]] = {LOGITS: [], FEATURES: []}
    kept |= {BLOCK_PREFIX + b.name: [] for b in blocks}
    moments = _MomentSums()
    with progress_bar(n, f"Embedding {n} images", enabled=progress) as bar:
        for index, start in enumerate(range(0, n, batch_size)):
            batch_rows = rows[order[start : start + batch_size]]
            used = len(batch_rows)
            batch = _padded(read_rows(images, batch_rows), batch_size)
            reduce_moments = with_moments and index < moment_batches
            if with_moments:
                out = model.predict_on_batch([batch, flags[reduce_moments]])
            else:
                out = model.predict_on_batch(batch)
            out = {k: np.asarray(keras.ops.convert_to_numpy(v))[:used] for k, v in out.items()}
            for key in kept:
                kept[key].append(out[key].astype(np.float32))
            if reduce_moments:
                moments.add(out[BN_MEAN], out[BN_SQ], used)
            bar.advance(used)
    mean, var = moments.mean_and_variance()
    restore = np.argsort(order)  # back to the order of `rows`
    gathered = {key: np.concatenate(parts)[restore] for key, parts in kept.items()}
    channels = tuple(int(model.get_layer(name).input.shape[-1]) for name in backbone.bn_layers)
    return Activations(
        logits=gathered[LOGITS],
        features=gathered[FEATURES],
        block_features={b.name: gathered[BLOCK_PREFIX + b.name] for b in blocks},
        bn_layers=tuple(backbone.bn_layers),
        bn_channels=channels,
        bn_mean=mean,
        bn_var=var,
        n_images=n,
        n_moment_images=moments.count,
    )


def _check_embed_inputs(backbone: Backbone, images: np.ndarray, rows: np.ndarray | None,
                        moment_images: int) -> np.ndarray:
    """Check :func:`embed`'s arguments; return the rows to embed as int64."""
    size = backbone.input_size  # image_size, or the native size the network upscales from
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise DatasetError(
            f"Expected images of shape (N, {size}, {size}, 3) for {backbone.name}. "
            f"Received: images.shape={images.shape}. Decode them at size {size}."
        )
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise DatasetError("Expected at least one image to embed. Received: 0 rows.")
    if moment_images < 1:
        raise ValueError(f"Expected moment_images >= 1. Received: moment_images={moment_images}")
    return rows


def _batch_order(n: int, batch_size: int, moment_images: int, seed: int) -> tuple[np.ndarray, int]:
    """Return the order the rows are embedded in and how many leading batches reduce BN moments.

    Up to `moment_images` rows every batch reduces them, in the rows' own
    order; beyond, the batches run in a seeded random order and the first
    ``ceil(moment_images / batch_size)`` of them reduce.
    """
    if n <= moment_images:
        return np.arange(n), n
    return np.random.default_rng(seed).permutation(n), -(-moment_images // batch_size)


def read_rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return ``images[rows]`` as uint8, in the order of `rows`, read in ascending row order.

    A memory map reads fastest front to back, so the rows are read sorted and
    the result is put back in the asked order.

    Example:
        >>> images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
        >>> read_rows(images, np.array([2, 0, 3])).ravel().tolist()
        [2, 0, 3]
    """
    rows = np.asarray(rows, dtype=np.int64)
    ascending = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
    out[ascending] = np.asarray(images[rows[ascending]], dtype=np.uint8)
    return out


def _padded(batch: np.ndarray, batch_size: int) -> np.ndarray:
    """Pad `batch` with black images to `batch_size`, so the compiled function is traced once."""
    if len(batch) == batch_size:
        return batch
    pad = np.zeros((batch_size - len(batch), *batch.shape[1:]), dtype=np.uint8)
    return np.concatenate([batch, pad])


class _MomentSums:
    """Per-channel sums of BN input means and squares over images, in float64 on the host."""

    def __init__(self) -> None:
        self.sum_mean: np.ndarray | None = None
        self.sum_sq: np.ndarray | None = None
        self.count = 0

    def add(self, batch_mean: np.ndarray, batch_sq: np.ndarray, used: int) -> None:
        """Add one batch's per-image channel means and squares (``(used, C)`` each)."""
        mean = batch_mean.astype(np.float64).sum(axis=0)
        sq = batch_sq.astype(np.float64).sum(axis=0)
        self.sum_mean = mean if self.sum_mean is None else self.sum_mean + mean
        self.sum_sq = sq if self.sum_sq is None else self.sum_sq + sq
        self.count += used

    def mean_and_variance(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-channel mean and variance (empty arrays when nothing was added)."""
        if self.sum_mean is None:
            empty = np.zeros(0, dtype=np.float64)
            return empty, empty
        mean = self.sum_mean / self.count
        return mean, np.maximum(self.sum_sq / self.count - mean**2, 0.0)


def bn_reference(backbone: Backbone) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return each BN layer's stored running mean and variance (of its training data).

    For the registered backbones that is ImageNet; for a ``--base`` model, the
    data it was trained on.

    Args:
        backbone: The backbone.

    Returns:
        ``{bn layer: (moving mean, moving variance)}`` as float64, in graph order.

    Example:
        >>> mean, var = bn_reference(backbone)["bn_Conv1"]
        >>> mean.shape, var.dtype
        ((32,), dtype('float64'))
    """
    reference = {}
    for name in backbone.bn_layers:
        layer = backbone.model.get_layer(name)
        reference[name] = (
            np.asarray(keras.ops.convert_to_numpy(layer.moving_mean), dtype=np.float64),
            np.asarray(keras.ops.convert_to_numpy(layer.moving_variance), dtype=np.float64),
        )
    return reference


def stratified_sample(labels: np.ndarray, cap: int, *, seed: int = config.DEFAULT_SEED) -> np.ndarray:
    """Pick at most `cap` indices whose class shares follow those of `labels`.

    Each class gets ``cap * share`` rounded by largest remainder, but at least
    ``min(its count, config.MIN_IMAGES_PER_CLASS)`` so the probes can use it
    (taken from the largest classes; only when those floors alone exceed
    `cap` are more than `cap` returned). All indices are returned when there
    are no more than `cap`.

    Args:
        labels: Integer label of every image.
        cap: Most indices to return.
        seed: Seed of the draw. Defaults to `config.DEFAULT_SEED`.

    Returns:
        Sorted int64 indices into `labels`.

    Raises:
        ValueError: `cap` is smaller than 1.

    Example:
        >>> stratified_sample(np.array([0] * 6 + [1] * 2), 4, seed=0).size
        4
    """
    if cap < 1:
        raise ValueError(f"Expected sample_cap >= 1. Received: sample_cap={cap}")
    labels = np.asarray(labels)
    n = labels.size
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = cap * counts / n
    quota = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - quota), kind="stable")[: cap - int(quota.sum())]:
        quota[index] += 1
    floor = np.minimum(counts, config.MIN_IMAGES_PER_CLASS)
    quota = np.maximum(quota, floor)
    while quota.sum() > cap and (quota > floor).any():  # pay the floors from the largest classes
        quota[np.argmax(quota - floor)] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == c), size=q, replace=False) for c, q in enumerate(quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def profile_activations(
    activations: Activations,
    labels: np.ndarray | None,
    *,
    backbone: Backbone,
    summary: DatasetSummary,
    class_names: Sequence[str],
    seed: int = config.DEFAULT_SEED,
) -> DatasetProfile:
    """Compute the :class:`~advisor.measure.profile.DatasetProfile` from one pass's activations.

    Args:
        activations: From :func:`embed`.
        labels: Integer labels aligned with the activations, or `None` (then no
            probes, and the head is summarised over all images).
        backbone: The backbone that produced them.
        summary: The dataset's scan summary (sizes and counts).
        class_names: Class names that `labels` index.
        seed: Seed of the probes' folds. Defaults to `config.DEFAULT_SEED`.

    Returns:
        The profile.

    Example:
        >>> from advisor.data import scan_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> decoded = decode_images(ds.files("train"), backbone.image_size)
        >>> acts = embed(backbone, decoded.images, rows=decoded.rows)
        >>> profile = profile_activations(acts, ds.labels("train")[decoded.rows], backbone=backbone,
        ...                               summary=ds.summary, class_names=ds.class_names)
        >>> profile.n_sampled, profile.probes is not None, 0 <= profile.similarity.score <= 1
        (60, True, True)
    """
    shift, notes = None, ()
    if backbone.bn_layers:
        shift = dataclasses.replace(
            shift_map(
                activations.bn_moments(),
                bn_reference(backbone),
                [(block.name, block.layers) for block in backbone.blocks],
            ),
            n_images=activations.n_moment_images,
        )
    head = head_stats(activations.logits, labels, class_names, imagenet_names=backbone.class_names)
    probes = None
    if labels is not None:
        probes = probe_accuracies(
            activations.features, labels, block_features=activations.block_features, seed=seed
        )
    # A one-output head (a regression or sigmoid base model) is always "sure": not scored.
    scored_head = head if activations.logits.shape[1] > 1 else None
    if shift is None:
        # Without BN statistics, only the probes say how well the features fit.
        scored_head = None if probes is not None else head
        notes = (NO_BATCHNORM_NOTE if probes is not None else NO_BATCHNORM_NO_PROBES_NOTE,)
    counts = tuple(int(summary.class_counts.get(name, 0)) for name in class_names)
    return DatasetProfile(
        backbone=backbone.name,
        image_size=backbone.image_size,
        class_names=tuple(class_names),
        class_counts=counts,
        n_images=summary.n_images,
        n_train=int(summary.split_sizes.get("train", summary.n_images)),
        imbalance_ratio=float(summary.imbalance_ratio),
        native_width=float(summary.width.median),
        native_height=float(summary.height.median),
        native_max_width=int(summary.width.max),
        native_max_height=int(summary.height.max),
        n_sampled=activations.n_images,
        seed=seed,
        shift=shift,
        head=head,
        probes=probes,
        similarity=similarity_score(shift, scored_head, probes),
        notes=notes,
    )


def file_shared_features(backbone: Backbone, images: np.ndarray, rows: np.ndarray,
                         activations: Activations) -> int:
    """File the pooled features of one forward pass in the shared store; return the layers filed.

    The bottleneck (``backbone.feature_layer``) and each probed block's
    output, keyed by the pixels of ``images[rows]``
    (:mod:`advisor.measure.feature_store`): what ``svm`` and ``last-layer`` read
    when they embed the same images with the same network.

    Example:
        >>> from advisor.data import scan_dataset
        >>> decoded = decode_images(scan_dataset(digits_dir).files("train")[:8], backbone.input_size)
        >>> acts = embed(backbone, decoded.images, rows=decoded.rows)
        >>> file_shared_features(backbone, decoded.images, decoded.rows, acts)  # bottleneck + 3 blocks
        4
    """
    digests = pixel_digests(images, rows)
    layers = {backbone.feature_layer: activations.features}
    for block in probe_blocks(backbone):
        if block.name in activations.block_features:
            layers[block.output] = activations.block_features[block.name]
    for layer, features in layers.items():
        save_features(backbone, layer, digests, features)
    return len(layers)


def measure_dataset(
    dataset: Dataset,
    backbone: Backbone,
    *,
    sample_cap: int = config.SAMPLE_CAP,
    seed: int = config.DEFAULT_SEED,
    progress: bool = False,
    share_features: bool = True,
) -> DatasetProfile:
    """Profile a dataset: sample, decode, one forward pass, measures.

    A stratified sample of at most `sample_cap` images of the train and
    validation splits (never the test split)
    is decoded through the decode cache as the backbone takes it (at
    ``backbone.input_size``, natively when the network upscales it), embedded
    once with :func:`embed`, and measured with :func:`profile_activations`.
    Files that fail to decode are left out of the sample.

    Args:
        dataset: A scanned dataset (:func:`advisor.data.scan_dataset`).
        backbone: The pretrained backbone.
        sample_cap: Most images to embed. Defaults to `config.SAMPLE_CAP`.
        seed: Seed of the sample and the probes. Defaults to `config.DEFAULT_SEED`.
        progress: Show progress bars for long steps. Defaults to `False`.
        share_features: File the sample's pooled bottleneck and block features
            (:func:`file_shared_features`), so a frozen regime on the same
            images does not embed them again. Defaults to `True`.

    Returns:
        The :class:`~advisor.measure.profile.DatasetProfile`.

    Raises:
        DatasetError: No image of the sample could be decoded.
        StorageError: The shared features could not be written (one line).

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.decide import decide
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone)
        >>> profile.n_sampled, profile.n_images, profile.image_size
        (80, 100, 96)
        >>> decide(profile, backbone=backbone).regime
        <Regime.SVM: 'svm'>
    """
    # The test split is never looked at: the probes use labels, and the plan
    # they inform is judged on the test split.
    files = [path for split in ADVICE_SPLITS for path in dataset.files(split)]
    labels = np.concatenate([dataset.labels(split) for split in ADVICE_SPLITS])
    picked = stratified_sample(labels, sample_cap, seed=seed)
    # As the run decodes for this network: at its input size, natively when it upscales in its graph.
    decoded = decode_images([files[i] for i in picked], backbone.input_size,
                            resize_ratio=backbone.decode_resize_ratio, progress=progress)
    rows = decoded.rows
    if rows.size == 0:
        raise DatasetError(
            f"None of the {picked.size} sampled images of {dataset.root} could be decoded; "
            "check the files (see the decode failures in the log)."
        )
    logger.info("Measuring %d of %d images of %s with %s at %d px.", rows.size, labels.size,
                dataset.root, backbone.name, backbone.image_size)
    activations = embed(backbone, decoded.images, rows=rows, seed=seed, progress=progress)
    if share_features:
        file_shared_features(backbone, decoded.images, rows, activations)
    return profile_activations(
        activations,
        labels[picked][rows],
        backbone=backbone,
        summary=dataset.summary,
        class_names=dataset.class_names,
        seed=seed,
    )
