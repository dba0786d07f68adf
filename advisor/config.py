"""Every default and threshold of the advisor, in one place.

Values that later issues calibrate say where they come from. Nothing here is
computed at import time and nothing changes global state.
"""

from __future__ import annotations

# --- Images -----------------------------------------------------------------
#: Default square input size of the network (pixels).
DEFAULT_IMAGE_SIZE = 224
#: torchvision's evaluation recipe: resize the short side to size * 256 / 224,
#: then centre-crop `size`. The ratio is kept for every size.
RESIZE_RATIO = 256 / 224
#: Refuse images with more pixels than this (Pillow's own bomb limit, 89.5 MP).
MAX_IMAGE_PIXELS = 89_478_485
#: File extensions read as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

# --- ImageNet normalisation (torchvision) -------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- Backbones ----------------------------------------------------------------
DEFAULT_BACKBONE = "mobilenet_v2"
#: torchvision's BatchNorm epsilon; Keras' default (1e-3) breaks the port.
TORCH_BN_EPSILON = 1e-5
#: ``advise --base PATH`` backbones are named ``base:<absolute path>[#<feature layer>]``.
BASE_MODEL_PREFIX = "base:"
#: A user's model is cut into at most this many blocks for partial fine-tuning
#: (MobileNetV2 has 19); finer cuts of its graph are merged evenly.
BASE_MODEL_MAX_BLOCKS = 16
#: What the similarity measures compare a dataset with, per kind of backbone.
REFERENCE_IMAGENET = "ImageNet"
REFERENCE_BASE_MODEL = "the base model's training data"

# --- Dataset ------------------------------------------------------------------
#: A class needs at least this many usable images.
MIN_IMAGES_PER_CLASS = 2
#: Default fractions of the split (train gets the rest).
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEED = 1337

# --- Regression targets (advise DATA_DIR --targets targets.csv) -------------------
#: A regression dataset needs at least this many usable (image, target) rows.
MIN_TARGET_ROWS = 10
#: The targets are cut into this many quantile bins: they stratify the split and
#: the measurement sample, and stand in for classes in the label-aware probes.
TARGET_BINS = 5
#: ...with at least this many images per bin (fewer bins for small sets).
TARGET_MIN_PER_BIN = 4

# --- Dataset ingestion and the decode cache -----------------------------------
#: Names of the split sub-folders of a pre-split dataset (DATA_DIR/<split>/<class>/).
#: Each split name maps to the folder names accepted for it.
SPLIT_FOLDER_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
#: Bump when the decoded-image geometry or the cache layout changes.
DECODE_CACHE_VERSION = 2
#: Items handed to a decode worker at once (amortises the pool's overhead).
DECODE_CHUNK_SIZE = 64
#: Fewer images than this are decoded in the calling thread (no pool start-up).
DECODE_MIN_PARALLEL = 256
#: executor="auto" decodes this many files or more in a spawned process pool,
#: fewer in threads (benchmarks/bench_decode.py: processes 2.9x faster at 70k,
#: slower below ~2k because each worker imports Pillow and NumPy).
DECODE_PROCESS_MIN_IMAGES = 5000
#: Draw a progress bar (when asked to) only for jobs running longer than this (s).
PROGRESS_DELAY_S = 2.0
#: The scan probes files (header + hash) in a spawned process pool over the
#: usable cores from this many files on, in chunks of SCAN_CHUNK_SIZE; one
#: thread below (see advisor.data.probe.probe_files for the measurements).
SCAN_PROCESS_MIN_FILES = 5000
SCAN_CHUNK_SIZE = 1024

# --- Measurement (advisor.measure.forward) ---------------------------------------------
#: Images embedded to profile a dataset (stratified; all images when fewer). The
#: issue's figure: ~2,000 keeps the one forward pass to minutes on 2 CPU cores
#: while the probes' cross-validated accuracy is already stable to ~1 point.
SAMPLE_CAP = 2_000
#: Most images of the sample whose BN-input moments (the shift map) are reduced;
#: the rest of the sample only feeds the head and the probes. On the TensorFlow
#: CPU backend a batch that reduces them costs ~40% more than one that does not
#: (bench_advisor, 2026-12-07: with 256 of 850 images the measuring pass ran at
#: 0.87x a bare forward pass). bench_moment_images (2026-12-07, 9 tasks, 5 batch
#: orders each, against the moments of every sampled image): at 128 images the
#: shift's score KL moved by at most 0.009 and the similarity by at most 0.012
#: (Tux Paint, 128 of its 224), and no first departing block or pick changed; at
#: 256, 0.005 and 0.004; at 96 and 64 the changes roughly doubled again.
MOMENT_IMAGES = 128
#: Images per forward pass of the measurement model.
EMBED_BATCH_SIZE = 32
#: Depths (block index / (blocks - 1)) of the intermediate blocks whose pooled
#: outputs the linear probe also reads; on MobileNetV2 (19 blocks) these are
#: block_8, block_12 and block_14 (CS231n: for small, different data, classify
#: from earlier activations).
PROBE_BLOCK_FRACTIONS = (0.5, 0.7, 0.85)
#: Largest size (MB) of the batch files of one shared-features namespace (one
#: network and layer, advisor.measure.feature_store); past it the least recently
#: used batches are deleted. One measuring pass files at most SAMPLE_CAP rows:
#: ~10.8 MB for MobileNetV2's 1280-wide bottleneck (float32 + digests), so 256 MB
#: keeps the last ~23 full passes per network and layer.
FEATURE_STORE_MAX_MB = 256

# --- Profile: layer-wise shift map (advisor.measure.profile) -----------------------------
#: Added to both variances in the per-channel Gaussian KL; torchvision's BN epsilon.
SHIFT_KL_EPSILON = 1e-5
#: A block "departs" from ImageNet when the mean KL of its BN inputs exceeds this.
#: Measured on the ported MobileNetV2 (200 images per set): foolbox's 20 ImageNet
#: photos stay <= 0.021 in every block and scikit-image's photos <= 0.062; digits,
#: MNIST, emoji and Fashion-MNIST exceed 0.1 from the stem on. ~5x the ImageNet maximum.
SHIFT_DEPARTURE_KL = 0.1
#: Depth range (block index / (blocks - 1)) of the blocks whose mean KL feeds the
#: similarity score: blocks 1-12 of MobileNetV2, which separated photos from
#: non-photos best in the issue's study (per-image AUROC 0.92 vs 0.83 for max-softmax).
SHIFT_SCORE_DEPTH = (0.1, 0.75)
#: KL scale of the shift component exp(-KL / scale): 0.25 maps ImageNet photos
#: (KL 0.008) to 0.97, scikit-image photos (0.026) to 0.90, Tux Paint (0.07) to
#: 0.76, Fashion-MNIST (0.30) to 0.31 and scikit-learn digits (0.42) to 0.18.
SHIFT_SCORE_SCALE = 0.25

# --- Profile: ImageNet head ------------------------------------------------------
#: ImageNet classes listed per class folder (most frequent argmax first).
HEAD_TOP_CLASSES = 3

# --- Profile: frozen-feature probes ----------------------------------------------
#: At most this many cross-validation folds (fewer when the smallest class is smaller).
PROBE_MAX_FOLDS = 5
#: Neighbours of the k-NN probe (cosine distance), capped by the training fold size.
PROBE_KNN_NEIGHBORS = 5
#: L2 penalty of the ridge linear probe on standardised features. Ridge was as
#: accurate as logistic regression (within 1-2 points on digits, MNIST, emoji,
#: Fashion-MNIST, Tux Paint) and 3-10x faster; alpha 100 was best or near-best on each.
PROBE_RIDGE_ALPHA = 100.0
#: Fractions of each training fold of the learning curve (the issue's 25/50/100%).
PROBE_LEARNING_CURVE = (0.25, 0.5, 1.0)
#: An earlier block "is as good" as the best probe (the bottleneck's or a block's)
#: when its linear-probe accuracy is at least the best one's minus this (about one
#: standard error of a 5-fold accuracy on a few hundred images).
PROBE_BLOCK_TOLERANCE = 0.01
#: ``svm`` reads the probed blocks and the bottleneck together (each layer
#: standardised and weighted the same) instead of one layer. Measured on the
#: converged advice-quality tasks at code 81f7f8f (benchmarks/bench_multilayer_svm.py,
#: test accuracy, one layer -> the four together): MNIST 300 0.873 -> 0.924,
#: digits 300 0.946 -> 0.964, Fashion-MNIST 300 0.791 -> 0.798, Tux Paint 0.872 -> 0.872.
SVM_READS_PROBED_LAYERS = True

# --- Profile: combined similarity score -------------------------------------------
#: Weights of the components of the similarity score (renormalised over those
#: present; the probe is absent without labels). The label-free shift map gets the
#: most weight: it separated photos from non-photos best in the issue's study.
SIMILARITY_WEIGHTS = {"shift": 0.5, "head": 0.3, "probe": 0.2}

# --- Decision (advisor.decide) -------------------------------------------------------------
# The regime thresholds (SVM_MAX_IMAGES, LARGE_DATASET_IMAGES,
# REGIME_SIMILARITY_THRESHOLD) are the defaults of advisor.decide.RegimeRules; the
# benchmark scores other values by passing RegimeRules(...) to choose_regime, never
# by patching these. They are fitted by the advice-quality benchmark:
#   benchmarks/results/advice_quality-merged-20261123-203634.json
#   (python -m benchmarks.advice_quality --calibrate-from on the five
#   advice_quality-full-20261123-*.json runs: 15 tasks, TF-CPU, one seed,
#   fine-tuning capped at 3 epochs and 128 px; the nine subsampled tasks tested
#   on 1,055-2,450 images each, their split's and up to 2,000 held-out ones).
# Leave one task out, the fit picks a regime within 0.5 pp of the best on 15 of
# 15 tasks (mean regret -0.05 pp, max 0.24). The former constants (2,000 / 5,000
# / 0.35, fitted on ~50-image test splits that made noise look like misses) also
# hit the first 14 of these tasks, at 0.07 pp mean regret
# (advice_quality-merged-20261123-195138.json). The 3-epoch cap handicaps
# fine-tuning, so the fit leans towards frozen features: re-fit on the full (GPU)
# run. The other constants here come from the sources quoted next to them.
#: Fewer images than this: bottleneck features + linear SVM. CS231n's seed rule
#: says "< ~1,000"; on the benchmark the SVM was best, or within 0.5 pp of the
#: best, on all 12 tasks under 5,000 images (263-3,000), fine-tuning included.
SVM_MAX_IMAGES = 5_000
#: From this many images on a dataset is "large" (partial for near data, full for
#: far). CS231n gives no number; Kornblith et al. (2019) find fine-tuning's gain
#: over a frozen linear probe small on sets of 2-4k images and large on 50k+. On
#: the benchmark fine-tuning won on MNIST 5k (partial, +2.4 pp over the SVM),
#: Fashion-MNIST 10k (full, +1.8 pp at its default rate) and animal silhouettes
#: 10k (full, +1.1 pp).
LARGE_DATASET_IMAGES = 10_000
#: Data with a similarity score at or above this "looks like ImageNet". Measured
#: (see SHIFT_SCORE_SCALE): ImageNet photos 0.80, Tux Paint 0.67, scikit-image photos
#: 0.62 lie above; emoji 0.41, Fashion-MNIST 0.39, CIFAR at 224 px 0.38, MNIST 0.36,
#: scikit-learn digits 0.30 below.
SIMILARITY_THRESHOLD = 0.5
#: Similarity at or above which the regime table treats data as near ImageNet:
#: ``last-layer`` for small sets, a partial fine-tune for large ones; below it,
#: ``partial`` and ``full``. Fitted by the advice-quality benchmark (see above);
#: it only matters from SVM_MAX_IMAGES on, where the suite has MNIST 5k (0.38),
#: Fashion-MNIST 10k (0.41) and animal silhouettes 10k (0.39), all far. It is not SIMILARITY_THRESHOLD (that
#: one says whether the data is photo-like), though both are 0.5 now.
REGIME_SIMILARITY_THRESHOLD = 0.5
#: Small & different data: freeze at least this fraction of the blocks (the generic
#: early filters; Yosinski et al. 2014: the first layers transfer to any images)...
PARTIAL_MIN_FROZEN_FRACTION = 1 / 3
#: ...and at most this fraction, so that some blocks are fine-tuned.
PARTIAL_MAX_FROZEN_FRACTION = 0.8
#: Large & similar data: fine-tune the later blocks, freezing this fraction.
LARGE_SIMILAR_FROZEN_FRACTION = 2 / 3

#: Below this native short side (pixels) images are "low resolution" and the input
#: shrinks: they carry no detail beyond their own pixels, compute grows with the
#: square of the input, and Keras ships ImageNet MobileNetV2 weights for 96-224 px.
#: Images of exactly 64 px keep 224 (x4 would be 256): measured on the 64 px emoji
#: set (1,330 train / 288 test images, MobileNetV2, benchmarks/bench_input_size.py,
#: results/input_size.jsonl), the SVM scored 0.698 / 0.729 / 0.750 / 0.743 test
#: accuracy at 96 / 128 / 160 / 224 px, so 128 px loses 1.4 pp (96 px 4.5 pp); 160
#: px matched 224 at half the compute, a candidate once fine-tuning is compared too.
LOW_RESOLUTION_SIDE = 64
#: Low-resolution images are upscaled by this factor (then rounded up to a multiple
#: of INPUT_SIZE_STEP): 28 px MNIST -> 128, 32 px CIFAR -> 128, 8 px digits -> 96.
LOW_RESOLUTION_UPSCALE = 4
#: The frozen regimes (``svm``, ``last-layer``) run the backbone once per image, so they
#: upscale twice as far: 28 px -> 224, 8 px digits -> 96 (the minimum). Measured with
#: benchmarks/bench_input_size.py (2026-12-06, the SVM on each set's own split, one seed;
#: results/input_size.jsonl): test accuracy at 128 / 224 px was 0.964 / 0.971 on MNIST 5k
#: (750 test images), 0.856 / 0.876 on Fashion-MNIST 3k (450), 0.953 / 0.971 on animal
#: silhouettes 3k (450), and 0.729 / 0.743 on the 64 px emoji; 8 px digits scored 0.989 at
#: 96 px and 0.978 at 224 (269). The fit took about twice as long at 224 px (25 s against 12
#: s on 2,100 images).
FROZEN_LOW_RESOLUTION_UPSCALE = 8
#: Smallest input size a plan asks for (the smallest of keras.applications'
#: pretrained MobileNetV2 sizes; a 3x3 final feature map).
MIN_INPUT_SIZE = 96
#: Input sizes are multiples of the backbone's total stride.
INPUT_SIZE_STEP = 32

#: Learning rate of a new head trained alone (AdamW default, Loshchilov & Hutter 2019).
HEAD_ONLY_LEARNING_RATE = 1e-3
#: Learning rate of the new head while fine-tuning a classifier with SGD momentum
#: 0.9, after the linear probe (LP-FT: the head is already trained). Measured on
#: digits (1,257 train / 270 test, 96 px, MobileNetV2, the plan's own 30 epochs
#: with early stopping; benchmarks/bench_fine_tune_rates.py, results/
#: fine_tune_rates*.jsonl, table in benchmarks/README.md): every run with the
#: backbone at 1e-3 diverged in epoch 1 (4 of 5: the former 1e-2 / 1e-3 on
#: ``partial`` and ``full``, 1e-3 / 1e-3 on ``full`` and on ``partial`` after an
#: AdamW probe) and only the guard's 10x-lower retry saved it; every run at 1e-4
#: (4 first attempts and 3 completed retries) converged without one.
FINE_TUNE_HEAD_LEARNING_RATE = 1e-3
#: ``partial`` fine-tunes at this many times those rates (head 3e-3, backbone
#: 3e-4), its rate search from there. Measured on the converged tasks (2 seeds,
#: 1,546-2,050 test images; benchmarks/README.md, "partial at 3x its rates"):
#: with the full-fine-tuning rates' 1x / 3x search `partial` ended at or below its
#: probe start in 3 of 4 runs (MNIST 300 84.8 / 91.3, probe 84.8; digits 300
#: 90.4 / 92.2, probe 92.0 / 92.2); searched from 3x it scored 93.0 / 90.8 and
#: 95.7 / 95.5, and
#: at 3x alone 80.4 / 80.2 on Fashion-MNIST 300 (80.4 / 79.1 at 1x, 2x budget).
PARTIAL_RATE_SCALE = 3.0
#: Backbone rate = head rate x this (the usual "10x smaller" fine-tuning rule; see
#: above for why 1e-3 / 1e-4 and not the former 1e-2 / 1e-3).
BACKBONE_LEARNING_RATE_FACTOR = 0.1
#: Images per step; SMALL_BATCH_SIZE when the training split is under SMALL_BATCH_MAX_TRAIN.
BATCH_SIZE = 32
SMALL_BATCH_SIZE = 16
SMALL_BATCH_MAX_TRAIN = 500
#: Epochs scale with dataset size so every plan takes about this many optimiser
#: steps, clipped to the ranges below.
HEAD_TARGET_STEPS = 2_000
HEAD_EPOCH_RANGE = (10, 100)
FINE_TUNE_TARGET_STEPS = 3_000
FINE_TUNE_EPOCH_RANGE = (3, 30)
#: Warm-up epochs = this fraction of the fine-tuning epochs (at least 1).
WARMUP_FRACTION = 0.1
#: Early-stopping patience = this fraction of the epochs, clipped to the range.
#: It is counted after the warm-up (Keras' ``EarlyStopping(start_from_epoch=...)``):
#: on MNIST 300 (benchmarks/README.md, "Converged oracle, first task") the
#: validation accuracy dipped for the warm-up epochs and a few more (45-50
#: validation images), and a patience counted from the probe stopped 5 of 6
#: fine-tuning settings inside that dip, returning their start. The dip outlasts
#: the warm-up: on digits 300 (benchmarks/README.md, "Why fine-tuning dips")
#: the augmented training accuracy fell from 0.94 to 0.68 and the validation
#: accuracy from 0.94 to 0.69 by epoch 5, and recovered by epoch 11; at 0.2
#: (patience 6 of 30 epochs) every `full` run stopped at epoch 9 and returned
#: its probe (test 0.921, below the SVM's 0.939), at 0.4 (patience 12) the
#: same plan reached 0.952 (best epoch 18). On MNIST 300 patience 12 moved
#: `full` at 1e-4 from 0.852 to 0.872 and no setting down.
PATIENCE_FRACTION = 0.4
PATIENCE_RANGE = (3, 12)
#: Fine-tuning a classifier tries the plan's (head, backbone) rates times each of
#: these scales, each from the probe to early stopping, and keeps the run with the
#: lowest validation loss (a grid search on the validation split, as the SVM's C).
#: Measured (benchmarks/README.md): on MNIST 300 `full` scored 0.852 at backbone
#: 1e-4 and 0.912 at 3e-4 (head 10x; 2,050 test images) and diverged at 1e-3; on
#: digits 1e-4 converged in every run and head 1e-2 / backbone 1e-3 diverged in
#: epoch 1. No single rate won both, and 3x the default is the largest step the
#: evidence allows; the default rate runs first.
FINE_TUNE_RATE_SCALES = (1.0, 3.0)
#: What fine-tuning a classifier selects its epochs and rates on (``Plan.select_on``):
#: the validation loss after temperature scaling, the loss of the model a run ships
#: (every classifier is calibrated on the validation split afterwards). On the raw
#: loss an over-confident fine-tuned network loses to its under-confident probe start
#: at equal accuracy. On the converged oracle (5 tasks, 2 seeds, `partial` and `full`)
#: selecting after calibration raised test accuracy on 6 of 10 runs (+0.2 to +2.5
#: points, digits `partial` 91.7 -> 94.0), held 2, lowered 2 (-0.4, -0.7), and
#: returned the probe in 1 run instead of 3; always-`full`'s mean regret fell from
#: 1.19 to 0.84 points (benchmarks/README.md, "Selecting on the calibrated loss").
FINE_TUNE_SELECT_ON = "calibrated-loss"
#: Fine-tuning's expected gain over the frozen ``svm`` estimate, per regime:
#: ``(mean points, standard deviation points, tasks, largest training split)`` over the
#: converged advice-quality tasks of the achieved test accuracy at the plan's own rates
#: minus the ``svm`` expected accuracy (:func:`advisor.decide.expectation.expected_accuracy`).
#: The estimate of a fine-tuning regime is the ``svm`` estimate plus the mean, its 95%
#: interval widened by the spread between tasks, on training splits of at most the
#: largest the oracle ran; beyond it the gain is not modelled and the estimate is
#: fine-tuning's floor. Fitted by ``benchmarks.advice_quality``
#: (``predictions.fit_gain_model``, checked leave one task out; benchmarks/README.md,
#: "Fine-tuning's expected gain"); a test keeps these figures equal to that fit on the
#: merged results named in ``FINE_TUNE_GAIN_SOURCE``.
FINE_TUNE_GAIN = {"partial": (-0.2, 1.6, 8, 3500), "full": (-0.1, 1.4, 8, 3500)}
FINE_TUNE_GAIN_SOURCE = "benchmarks/results/advice_quality-merged-20261207-170306.json"
#: Augmentations while fine-tuning; "flip" only for data that looks like photos
#: (mirroring changes the meaning of digits and text).
FINE_TUNE_AUGMENTATION = ("translate", "zoom")
PHOTO_AUGMENTATION = ("flip",)
#: Classes are weighted (n / (k * count)) when the largest class has more than this
#: many times the images of the smallest (first value; benchmark calibrates).
IMBALANCE_RATIO_THRESHOLD = 2.0
#: Values of the linear SVM's C searched by cross-validation (log grid around 1,
#: on standardised features).
SVM_C_GRID = (0.01, 0.1, 1.0, 10.0)
#: Regression's ``svm`` is ridge regression on the embeddings with alpha = 1 / (2C),
#: C cross-validated over this grid (alpha 500 to 0.5). On MobileNetV2 features
#: of scikit-learn digits (digit value as target) alpha 30-50 was best.
REGRESSION_C_GRID = (0.001, 0.01, 0.1, 1.0)
#: Loss of the regression head on standardised targets: "huber" (delta 1, robust
#: to outlying targets) or "mse".
REGRESSION_LOSS = "huber"
#: Head rate of regression fine-tuning (AdamW; the backbone gets
#: BACKBONE_LEARNING_RATE_FACTOR of it). At AdamW's default 1e-3 the first epoch
#: on digits (partial, MobileNetV2) diverged (training loss 0.17 -> 1.5) and the
#: guard had to retry; SGD at the former classification rate (1e-2) diverged too.
REGRESSION_FINE_TUNE_LEARNING_RATE = 1e-4

# Head -----------------------------------------------------------------------
#: Heads ``--head`` may force: one softmax layer, or the hidden layer below.
HEADS = ("linear", "mlp")
#: A hidden layer (Dense + BatchNormalization + ReLU + Dropout) goes under the
#: softmax layer when the training split has at least this many images (and the
#: regime is not ``svm``): below it, the extra (feature_dim x units) weights
#: overfit and a linear head is the better bet. Chollet's Keras fine-tuning
#: recipe (Deep Learning with Python, ch. 8) puts Dense(256) + Dropout(0.5) on
#: top of a frozen base; this is that head, kept for data large enough to fit it.
#: Not yet calibrated by benchmarks/advice_quality.
HIDDEN_HEAD_MIN_TRAIN = 5_000
HIDDEN_HEAD_UNITS = (256,)
HIDDEN_HEAD_DROPOUT = 0.5
HIDDEN_HEAD_BATCHNORM = True

# Backbone choice ------------------------------------------------------------
#: With no --backbone, the advisor measures with DEFAULT_BACKBONE and switches to
#: STRONGER_BACKBONE (then measures again with it) when the plan fine-tunes and the
#: dataset has at least this many images. Rationale: for fine-tuning, ImageNet top-1
#: predicts transfer accuracy almost perfectly (Kornblith, Shlens & Le 2019, "Do
#: better ImageNet models transfer better?", r = 0.96 over 12 datasets), and
#: EfficientNet-Lite0 has 75.1% vs MobileNetV2's 71.9% at about 1.35x the multiply-adds
#: (407M vs 300M) and 1.3x the parameters; on this many images the fine-tuning
#: epochs dwarf the second measuring pass. Frozen-feature regimes keep the cheaper
#: backbone: there the gain is smaller and the measuring pass is a large share of
#: the run. Not yet validated by benchmarks/advice_quality (needs a GPU run).
STRONGER_BACKBONE = "efficientnet_lite0"
STRONGER_BACKBONE_MIN_IMAGES = 10_000

# --- Execution defaults (strategies) -----------------------------------------
# Every Plan copies these into its fields (Plan.momentum, Plan.weight_decay, ...),
# so a saved plan replays its run; the strategies read the Plan, never these.
#: SGD momentum (``Optimizer.SGD`` is SGD with momentum; Kornblith et al. 2019 use 0.9).
SGD_MOMENTUM = 0.9
#: Decoupled weight decay of AdamW.
ADAMW_WEIGHT_DECAY = 1e-4
#: Largest shift of the ``translate`` augmentation, as a fraction of height and width.
AUGMENTATION_TRANSLATE = 0.1
#: Largest zoom in or out of the ``zoom`` augmentation, as a fraction.
AUGMENTATION_ZOOM = 0.1
#: Augmented views of the training images embedded (once) for the linear probe
#: when the plan augments.
AUGMENTED_VIEWS = 2
#: ``partial`` trains on cached activations of its frozen prefix (computed once per
#: image and view, float16 memory maps under the cache dir) while the cache stays at
#: most this many MB; above it the plan fine-tunes end to end.
PREFIX_CACHE_MAX_MB = 4096
#: Most precomputed augmented views of each training image in the prefix cache when
#: the plan augments (each epoch draws one per image); fewer when the plan has
#: fewer epochs or the cap allows fewer.
PREFIX_CACHE_MAX_VIEWS = 4
#: Most cross-validation folds used to choose the linear SVM's C (fewer when the
#: smallest class is smaller).
SVM_CV_FOLDS = 5
#: From this many training images the SVM's C is chosen on SVM_CV_FOLDS_LARGE
#: folds. Any k-fold split scores every training image once, so fewer folds cost
#: fewer fits without fewer scored images. Measured on the probed layers
#: (1,600 wide, tol 1e-2, 2 cores): on emoji (1,330 training images) 3 folds
#: searched in 7.1 s against 16.2 s for 5 and chose the same C (1) and test
#: accuracy (76.4%); benchmarks/README.md, "The SVM's C search".
SVM_CV_FOLDS_LARGE_FROM = 1_000
SVM_CV_FOLDS_LARGE = 3
#: Precision of fine-tuning: "auto" is ACCELERATOR_POLICY when an accelerator is
#: visible and "float32" on CPU; "float32" or "mixed_bfloat16" force one.
PRECISION = "auto"
#: The mixed precision "auto" uses on accelerators.
ACCELERATOR_POLICY = "mixed_bfloat16"
