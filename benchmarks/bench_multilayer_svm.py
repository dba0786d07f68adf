"""Does a linear SVM on several blocks' pooled features close the gap to fine-tuning? (issue 17)

Head2Toe (Evci et al., 2022) matched fine-tuning on VTAB-1k with a linear probe
on features pooled from many layers. On the converged oracle's far tasks the
``svm`` (one layer: the plan's) trails ``full`` fine-tuning by up to 6 pp (MNIST
300), and the block probes say early blocks carry the digits better than the
bottleneck does. This fits the advisor's ``svm`` plan for a task on the
oracle's split (:func:`benchmarks.advice_quality.runner.task_plan`, held-out
images included) with the plan's own feature layer, and then with the pooled
outputs of several blocks concatenated, each block's features standardised on
the training split and divided by the square root of their width (every block
weighs the same: :class:`advisor.measure.layer_features.LayerStandardizer`, as the
``svm`` regime does), C chosen by the plan's cross-validation over a wider grid.
One forward pass per image gives every layer (:class:`strategies.embeddings.Embedder`
on all of them). It prints the test accuracy of
each feature set; one JSON line per task and feature set goes to ``--results``.

Feature sets:

- ``plan``: the plan's feature layer alone, as the ``svm`` regime fits it;
- ``bottleneck``: the backbone's pooled bottleneck alone;
- ``all-blocks``: every block's output (stem to head);
- ``late-half``: the later half of the blocks and the head;
- ``early-half``: the stem and the earlier half of the blocks;
- ``probed``: the blocks the measuring pass probes and files
  (:func:`advisor.measure.forward.probe_blocks`) and the bottleneck: features
  ``advise`` already holds after measuring.

Run::

    python -m benchmarks.bench_multilayer_svm --tasks digits-300,fashion-mnist-300,mnist-5k-300
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

#: C values of the concatenated sets' search (their scale is not the bottleneck's).
CONCAT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def feature_sets(block_outputs: list[str], plan_layer: str, bottleneck: str,
                 probed: list[str] = ()) -> dict[str, list[str]]:
    """Return ``{name: layers}`` of the compared feature sets (`block_outputs` stem first, head last).

    Example:
        >>> sets = feature_sets(["stem", "b1", "b2", "b3", "head"], "b2", "pool", ["b2", "b3"])
        >>> sets["plan"], sets["all-blocks"], sets["late-half"], sets["early-half"], sets["probed"]
        (['b2'], ['stem', 'b1', 'b2', 'b3', 'head'], ['b2', 'b3', 'head'], ['stem', 'b1'], ['b2', 'b3', 'pool'])
    """
    half = len(block_outputs) // 2
    return {"plan": [plan_layer], "bottleneck": [bottleneck], "all-blocks": list(block_outputs),
            "late-half": list(block_outputs[half:]), "early-half": list(block_outputs[:half]),
            "probed": [*probed, bottleneck]}


def pooled_features(backbone, layers: list[str], images: np.ndarray, rows: np.ndarray,
                    batch_size: int) -> dict[str, np.ndarray]:
    """Return ``{layer: (len(rows), width) float32}``: each layer's output, pooled, in one pass.

    :class:`strategies.embeddings.Embedder` on all `layers` at once, split back per layer.
    """
    from strategies.embeddings import Embedder

    embedder = Embedder(backbone, layers, batch_size=batch_size)
    together = embedder.embed(images, rows=rows)
    ends = np.cumsum(embedder.widths)
    return {name: together[:, end - width:end] for name, width, end in zip(layers, embedder.widths, ends)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="digits-300,fashion-mnist-300,mnist-5k-300")
    parser.add_argument("--sets", default="plan,bottleneck,all-blocks,late-half,early-half,probed")
    parser.add_argument("--heldout", type=int, default=2_000)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-multilayer-"))
    from advisor.data.decode_cache import decode_dataset, decode_images
    from advisor.measure.forward import probe_blocks
    from advisor.measure.layer_features import LayerStandardizer
    from benchmarks.advice_quality.report import append_line, load_line
    from benchmarks.advice_quality.runner import Runner, task_plan
    from strategies.svm import fit_linear_svm

    print(load_line(), flush=True)
    runner = Runner()
    print(f"{'task':20} {'features':12} {'layers':>6} {'width':>6} {'C':>7} {'cv':>6} {'val':>6} "
          f"{'test':>6} {'n test':>6} {'fit s':>6}", flush=True)
    for task in args.tasks.split(","):
        advice, plan, heldout = task_plan(task, runner, "svm", heldout=args.heldout)
        dataset, decoded = decode_dataset(advice.dataset, plan.input_size,
                                          resize_ratio=plan.decode_resize_ratio)
        network = runner.backbone(plan.backbone, plan.image_size, plan.decode_size)
        blocks = [b.output for b in network.blocks]
        sets = {name: layers for name, layers in
                feature_sets(blocks, plan.feature_layer, network.feature_layer,
                             [b.output for b in probe_blocks(network)]).items()
                if name in args.sets.split(",")}
        layers = sorted({layer for chosen in sets.values() for layer in chosen})
        started = time.perf_counter()
        features = {split: pooled_features(network, layers, decoded[split].images, decoded[split].rows,
                                           plan.batch_size) for split in ("train", "val", "test")}
        labels = {split: dataset.labels(split) for split in ("train", "val", "test")}
        if heldout is not None:
            images = decode_images(heldout.paths, plan.input_size, resize_ratio=plan.decode_resize_ratio)
            extra = pooled_features(network, layers, images.images, images.rows, plan.batch_size)
            features["test"] = {k: np.concatenate([features["test"][k], extra[k]]) for k in layers}
            labels["test"] = np.concatenate([labels["test"], heldout.labels[images.rows]])
        embed_s = time.perf_counter() - started
        for name, chosen in sets.items():
            started = time.perf_counter()
            if len(chosen) == 1:  # as the svm regime fits it: raw features, the plan's grid
                x = {s: features[s][chosen[0]] for s in features}
                searched = plan
            else:
                joined = {s: np.concatenate([features[s][k] for k in chosen], axis=1) for s in features}
                standardizer = LayerStandardizer([features["train"][k].shape[1] for k in chosen])
                standardizer.fit(joined["train"])
                x = {s: standardizer.transform(v) for s, v in joined.items()}
                searched = dataclasses.replace(plan, svm_c_grid=CONCAT_C_GRID)
            svm, record = fit_linear_svm(x["train"], labels["train"], searched)
            correct = svm.predict(x["test"]) == labels["test"]
            row = {"task": task, "features": name, "layers": chosen, "width": int(x["train"].shape[1]),
                   "best_c": record["best_c"], "cv_accuracy": max(record["cv_accuracy"] or [float("nan")]),
                   "val_accuracy": float(svm.score(x["val"], labels["val"])),
                   "test_accuracy": float(np.mean(correct)), "n_test": int(len(correct)),
                   "test_correct": "".join("1" if c else "0" for c in correct),
                   "fit_s": time.perf_counter() - started, "embed_s": embed_s,
                   "image_size": plan.image_size}
            print(f"{task:20} {name:12} {len(chosen):6d} {row['width']:6d} {row['best_c']:7g} "
                  f"{row['cv_accuracy']:6.3f} {row['val_accuracy']:6.3f} {row['test_accuracy']:6.4f} "
                  f"{row['n_test']:6d} {row['fit_s']:6.1f}", flush=True)
            append_line(args.results, row)


if __name__ == "__main__":
    main()
