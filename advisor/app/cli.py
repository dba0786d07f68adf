"""The ``advise`` command line: parse, call, render. Nothing here measures or trains.

``advise DATA_DIR`` is the main job; other commands are sub-commands
(``advise imagenet IMAGE...``). Only :class:`AdvisorError` is turned into a
one-line message (exit code 2); anything else is a bug and keeps its traceback.

The commands import the pipeline inside their bodies: not to dodge a cycle
(the CLI sits on top of every layer) but so that ``--help``, a mistyped
argument, a missing path or a finished output folder answer without loading
TensorFlow (:mod:`advisor.app.preflight` checks the paths first).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from advisor import config
from advisor.errors import AdvisorError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure a folder of labelled images against ImageNet, plan, and fine-tune.")
out_console = Console()
err = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)


def _fail(exc: AdvisorError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False, markup=True)
    return typer.Exit(code=2)


@app.callback()
def _group() -> None:
    """Measure a folder of labelled images against ImageNet, plan, and fine-tune.

    Main use: advise DATA_DIR [--dry-run]. DATA_DIR has one sub-folder per class.
    """


def _keras_verbose(verbose: bool) -> int:
    return 2 if verbose else 0


BASE_HELP = ("Start from your own Keras model (.keras, or a legacy .h5) instead of ImageNet, "
             "e.g. the model.keras of an earlier run: RGB input, pixels 0-255, a Dense layer at the end.")
FEATURE_LAYER_HELP = "With --base: the layer the new head reads. Defaults to the input of the last Dense layer."
#: How --out's default reads in the help (the folder is run_folder.default_out_dir's).
OUT_DEFAULT = "./advise-runs/NAME"
RATE_SEARCH_HELP = ("Fine-tune once at the plan's rates, in half the time, instead of at 1x and 3x "
                    "them keeping the lower validation loss.")
EXPORT_HELP = ("Also write deployable copies, checked against model.keras on the test split: "
               "comma-separated litert, litert-dynamic, litert-int8, onnx, saved_model (see advise export).")


def _chosen_backbone(backbone: str | None, base: Path | None, feature_layer: str | None) -> str | None:
    """Return the backbone name that --backbone / --base / --feature-layer ask for (None: the advisor picks)."""
    if base is None:
        if feature_layer is not None:
            raise AdvisorError(f"--feature-layer {feature_layer} needs --base PATH (a model of your own)")
        return backbone
    if backbone not in (None, config.DEFAULT_BACKBONE):
        raise AdvisorError(f"Pass either --backbone or --base. Received: --backbone {backbone} --base {base}")
    return config.BASE_MODEL_PREFIX + str(base.expanduser().resolve())


@app.command("run")
def run_command(
    data_dir: Annotated[Path, typer.Argument(metavar="DATA_DIR", help="One sub-folder per class (or train/val/test of those).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Advice only: measure and plan, do not train; writes advice.json and advice.html.")] = False,
    out: Annotated[Path | None, typer.Option(metavar="DIR", help=f"Output folder. Defaults to {OUT_DEFAULT}, NAME being DATA_DIR's name (NAME-advice for a dry run).")] = None,
    regime: Annotated[str | None, typer.Option(metavar="NAME", help="Force a regime: svm, last-layer, partial or full.")] = None,
    backbone: Annotated[str | None, typer.Option(metavar="NAME", help=f"Backbone name, or keras:APPLICATION (a keras.applications model). Defaults to {config.DEFAULT_BACKBONE}, or {config.STRONGER_BACKBONE} when the plan fine-tunes {config.STRONGER_BACKBONE_MIN_IMAGES:,}+ images.")] = None,
    sample_cap: Annotated[int, typer.Option(min=10, metavar="N", help="Images embedded for the measurements.")] = config.SAMPLE_CAP,
    epochs: Annotated[int | None, typer.Option(min=0, metavar="N", help="Override the plan's fine-tuning epochs.")] = None,
    no_rate_search: Annotated[bool, typer.Option("--no-rate-search", metavar="", help=RATE_SEARCH_HELP)] = False,
    head: Annotated[str | None, typer.Option(metavar="NAME", help="Force the head: linear (one softmax layer) or mlp (Dense + BatchNorm + Dropout under it).")] = None,
    base: Annotated[Path | None, typer.Option("--base", metavar="MODEL", help=BASE_HELP)] = None,
    feature_layer: Annotated[str | None, typer.Option("--feature-layer", metavar="LAYER", help=FEATURE_LAYER_HELP)] = None,
    targets: Annotated[Path | None, typer.Option("--targets", metavar="CSV", help="Regression: a CSV of (image path relative to DATA_DIR, number) rows; DATA_DIR may then be a flat folder.")] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the split, the sample and the run.")] = config.DEFAULT_SEED,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Start afresh: replace a finished or interrupted run in --out.")] = False,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print only JSON on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log progress details and list every plan field.")] = False,
    export: Annotated[str | None, typer.Option("--export", metavar="FORMATS", help=EXPORT_HELP)] = None,
    estimate_cost: Annotated[bool, typer.Option("--estimate-cost", metavar="", help="Also measure, on a few batches here (cached per machine), each regime's images/s and print its expected wall time.")] = False,
    budget: Annotated[str | None, typer.Option("--budget", metavar="TIME", help="A time budget (90s, 10m, 1.5h): run the regime expected to finish within it on this machine (implies --estimate-cost).")] = None,
) -> None:
    """Profile DATA_DIR, pick a transfer-learning regime, and run it (advise DATA_DIR)."""
    _setup_logging(verbose)
    from advisor.app.export_formats import check_requirements, parse_formats
    from advisor.app.preflight import check_choice, check_run_paths
    from advisor.app.run_folder import default_out_dir
    from advisor.plan import Regime

    progress = not json_output and sys.stderr.isatty()
    try:
        forced = Regime.parse(regime) if regime else None
        backbone = _chosen_backbone(backbone, base, feature_layer)
        rate_search = not no_rate_search
        target = out or default_out_dir(data_dir, dry_run=dry_run)
        check_run_paths(data_dir, out=target, targets=targets, base=base, overwrite=overwrite)
        check_choice("--head", head, config.HEADS)
        budget_s = None
        if budget is not None:
            from advisor.decide.budget import parse_budget

            budget_s = parse_budget(budget)
            if forced is not None:
                raise AdvisorError(f"--budget {budget} chooses the regime; --regime {regime} forces one. Drop one of them.")
        if export and dry_run:
            raise AdvisorError(f"--export {export} writes the trained model; --dry-run trains none. Drop one of them.")
        formats = [check_requirements(f) for f in parse_formats(export)] if export else []
        # TensorFlow/Keras load here, once the arguments and paths are sound.
        from advisor.app import pipeline
        from advisor.environment import initialize_processes

        initialize_processes()  # joins a multi-host JAX run (KERAS_DISTRIBUTION_*); else a no-op
        from advisor.reports.console import render_advice, render_result

        if formats:
            from advisor.app.export import check_backend

            formats = [check_backend(f) for f in formats]

        advice = None if dry_run or overwrite else pipeline.interrupted_advice(target)
        if advice is not None:
            err.print(f"Resuming the interrupted run in {target}.partial with its saved plan "
                      f"({advice.plan.regime.value}); delete that folder to start over.")
        else:
            advice = pipeline.advise(data_dir, backbone=backbone, regime=forced, sample_cap=sample_cap,
                                     seed=seed, epochs=epochs, head=head, feature_layer=feature_layer,
                                     targets=targets, progress=progress, rate_search=rate_search)
        if budget_s is not None and advice.budget is None:
            advice = pipeline.fit_budget(advice, budget_s, epochs=epochs, head=head, rate_search=rate_search)
        elif estimate_cost:
            advice = pipeline.with_costs(advice, epochs=epochs, head=head, rate_search=rate_search)
        if not json_output:
            render_advice(advice.to_dict(), out_console, verbose=verbose)
            if advice.costs:
                from advisor.reports.cost_view import render_costs

                render_costs(advice.costs, out_console, advice.budget)
        if dry_run:
            folder = pipeline.write_advice(advice, target, overwrite=overwrite)
            if json_output:
                print(_json(advice.to_dict()))
            else:
                out_console.print(f"Advice written to [bold]{folder}[/bold] (advice.json, advice.html)")
            return
        result = pipeline.execute(advice, target, overwrite=overwrite, progress=progress,
                                  verbose=_keras_verbose(verbose))
        if not json_output:
            render_result(result.report, result.out, out_console)
        exports = _export(result.out, formats, json_output=json_output)
    except AdvisorError as exc:
        raise _fail(exc) from None
    if json_output:
        print(_json(result.report | ({"exports": exports} if formats else {})))


def _export(run_dir: Path, formats, *, json_output: bool, out: Path | None = None) -> list[dict]:
    """Export a finished run in each format; print one line per export (and any warning)."""
    from advisor.app.export import export_run_formats

    done = []
    for result in export_run_formats(run_dir, formats, out=out):
        check = result.check
        if not json_output:
            scores = (f"test accuracy {check.value:.4f} (model.keras {check.reference:.4f})"
                      if check.metric == "accuracy" else f"test MAE {check.value:.4g} (model.keras {check.reference:.4g})")
            out_console.print(f"{result.format}: [bold]{result.path}[/bold] ({result.bytes / 1e6:.1f} MB), "
                              f"agrees with model.keras on {check.agreement:.1%} of {check.n_images} test images, "
                              f"{scores}; class names in {result.sidecar.name}", highlight=False)
        if result.warning:
            err.print(f"[yellow]warning:[/yellow] {result.warning}", highlight=False)
        done.append(result.to_dict())
    return done


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The folder of a finished run (advise DATA_DIR --out RUN).")],
    export_format: Annotated[str, typer.Option("--format", metavar="FORMATS", help="litert, litert-dynamic (int8 weights), litert-int8 (int8 throughout), onnx or saved_model; comma-separated for several.")],
    out: Annotated[Path | None, typer.Option(metavar="PATH", help="Where to write it (one format). Defaults to RUN_DIR/model.tflite, model-dynamic.tflite, model-int8.tflite, model.onnx or saved_model/.")] = None,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print only JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log progress details.")] = False,
) -> None:
    """Write a run's model as LiteRT (float, int8 weights or int8), ONNX or SavedModel, checked against model.keras first."""
    _setup_logging(verbose)
    from advisor.app.export_formats import check_requirements, parse_formats

    try:
        formats = [check_requirements(f) for f in parse_formats(export_format)]
        if not run_dir.is_dir():
            raise AdvisorError(f"{run_dir} is not a folder; pass the folder of a finished run (advise DATA_DIR --out RUN)")
        exports = _export(run_dir, formats, json_output=json_output, out=out)
    except AdvisorError as exc:
        raise _fail(exc) from None
    if json_output:
        print(_json({"exports": exports}))


@app.command("compare")
def compare_command(
    data_dir: Annotated[Path, typer.Argument(metavar="DATA_DIR", help="One sub-folder per class.")],
    out: Annotated[Path | None, typer.Option(metavar="DIR", help=f"Output folder. Defaults to {OUT_DEFAULT}-compare, NAME being DATA_DIR's name.")] = None,
    regimes: Annotated[str | None, typer.Option(metavar="LIST", help="Comma-separated regimes to run for every backbone, or 'advised'. Defaults to all four with one backbone, the advised one with several.")] = None,
    backbone: Annotated[str, typer.Option(metavar="NAME", help="Backbone name.")] = config.DEFAULT_BACKBONE,
    backbones: Annotated[str | None, typer.Option(metavar="LIST", help="Comma-separated backbones to put side by side, e.g. mobilenet_v2,efficientnet_lite0 (overrides --backbone).")] = None,
    base: Annotated[Path | None, typer.Option("--base", metavar="MODEL", help=BASE_HELP + " Runs beside --backbones when given.")] = None,
    feature_layer: Annotated[str | None, typer.Option("--feature-layer", metavar="LAYER", help=FEATURE_LAYER_HELP)] = None,
    epochs: Annotated[int | None, typer.Option(min=0, metavar="N", help="Override the plans' fine-tuning epochs.")] = None,
    no_rate_search: Annotated[bool, typer.Option("--no-rate-search", metavar="", help=RATE_SEARCH_HELP)] = False,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the split and the runs.")] = config.DEFAULT_SEED,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Replace a finished comparison.")] = False,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print only JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log progress details and Keras' per-epoch lines.")] = False,
) -> None:
    """Run several regimes (or backbones) under one split and compare them side by side."""
    _setup_logging(verbose)
    from advisor.app.preflight import check_run_paths
    from advisor.app.run_folder import default_out_dir
    from advisor.plan import Regime

    progress = not json_output and sys.stderr.isatty()
    try:
        names = [b.strip() for b in (backbones or backbone).split(",") if b.strip()]
        if not names or len(set(names)) < len(names):
            raise AdvisorError(f"--backbones needs distinct backbone names. Received: {backbones!r}")
        if base is not None or feature_layer is not None:  # the user's model, beside --backbones
            names = (names if backbones else []) + [
                _chosen_backbone(config.DEFAULT_BACKBONE, base, feature_layer)]
        rate_search = not no_rate_search
        chosen = None if regimes in (None, "advised") else [
            Regime.parse(r.strip()) for r in regimes.split(",") if r.strip()]
        target = out or default_out_dir(data_dir, dry_run=False).with_name(
            default_out_dir(data_dir, dry_run=False).name + "-compare")
        check_run_paths(data_dir, out=target, base=base, overwrite=overwrite)
        # TensorFlow/Keras load here, once the arguments and paths are sound.
        from advisor.app import pipeline
        from advisor.environment import initialize_processes

        initialize_processes()  # joins a multi-host JAX run (KERAS_DISTRIBUTION_*); else a no-op

        advices = [pipeline.advise(data_dir, backbone=name, seed=seed, epochs=epochs,
                                   feature_layer=feature_layer if name.startswith(
                                       config.BASE_MODEL_PREFIX) else None,
                                   progress=progress, rate_search=rate_search) for name in names]
        if regimes == "advised" and len(advices) == 1:
            chosen = [advices[0].plan.regime]
        rows = pipeline.compare(advices, target, regimes=chosen, epochs=epochs, overwrite=overwrite,
                                progress=progress, verbose=_keras_verbose(verbose), rate_search=rate_search)
    except AdvisorError as exc:
        raise _fail(exc) from None
    if json_output:
        print(_json({"advised": advices[0].plan.regime.value,
                     "advised_by_backbone": {a.plan.backbone: a.plan.regime.value for a in advices},
                     "rows": rows}))
        return
    several = len(advices) > 1
    table = Table(title=f"{'Backbones' if several else 'Regimes'} on {data_dir} (* = advised)")
    columns = (("backbone",) if several else ()) + (
        "regime", "similarity", "test accuracy", "macro-F1", "advise s", "fit s", "ms/image", "model MB")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*((row["backbone"],) if several else ()),
                      ("* " if row["picked"] else "") + row["regime"], f"{row['similarity']:.2f}",
                      f"{row['test_accuracy']:.4f}", f"{row['macro_f1']:.4f}", f"{row['advise_s']:.1f}",
                      f"{row['fit_s']:.1f}", f"{row['predict_ms_per_image']:.1f}",
                      f"{row['model_bytes'] / 1e6:.1f}")
    out_console.print(table)
    out_console.print(f"Written to [bold]{target}[/bold] (compare.json, compare.html)")


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A model.keras written by advise, or an export of it (.tflite, .onnx, saved_model folder).")],
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files or folders.")],
    top: Annotated[int, typer.Option(min=1, metavar="K", help="Classes per image.")] = 3,
    output_format: Annotated[str, typer.Option("--format", metavar="FORMAT", help="table, csv or json.")] = "table",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log progress details.")] = False,
) -> None:
    """Predict the top classes of images with a saved model (a regression model: their values)."""
    _setup_logging(verbose)
    from advisor.app.preflight import check_predict_paths

    if output_format not in ("table", "csv", "json"):
        raise _fail(AdvisorError(f"--format must be table, csv or json. Received: {output_format!r}"))
    try:
        files = check_predict_paths(model, images)  # before Keras loads
        from advisor.app.predict import predict_image_files

        result = predict_image_files(model, files, k=top)
    except AdvisorError as exc:
        raise _fail(exc) from None
    if output_format == "json":
        print(_json(result.to_dict()))
    elif output_format == "csv":
        print(result.to_csv(), end="")
    else:
        table = Table(title=f"Predictions of {model}")
        table.add_column("image", overflow="fold")  # the whole path, wrapped: never cut to a common prefix
        if result.task == "regression":
            table.add_column(f"predicted {result.target_name or 'value'}")
            for row in result.rows:
                table.add_row(str(row.path), f"{row.value:.4g}")
        else:
            table.add_column("top classes (calibrated probability)")
            for row in result.rows:
                table.add_row(str(row.path), ", ".join(f"{n} {p:.3f}" for n, p in row.classes))
        out_console.print(table)
    for path, reason in result.skipped:
        err.print(f"[yellow]skipped:[/yellow] {path}: {reason}", highlight=False)


def _json(data) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str)


@app.command("imagenet")
def imagenet_command(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files or folders of images.")],
    backbone: Annotated[str, typer.Option(metavar="NAME", help="Backbone name.")] = config.DEFAULT_BACKBONE,
    top: Annotated[int, typer.Option(min=1, max=20, metavar="K", help="How many classes to show.")] = 5,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="At most this many images.")] = 8,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log progress details.")] = False,
) -> None:
    """Show the backbone's top ImageNet classes for a few images (what the network sees)."""
    _setup_logging(verbose)
    from advisor.app.imagenet import imagenet_top_k

    try:
        rows = imagenet_top_k(images, backbone_name=backbone, k=top, limit=limit)
    except AdvisorError as exc:
        raise _fail(exc) from None
    table = Table(title=f"{backbone}: top-{top} ImageNet classes")
    table.add_column("image")
    table.add_column("classes (probability)")
    for path, classes in rows:
        table.add_row(path.name, ", ".join(f"{name} {p:.2f}" for name, p in classes))
    out_console.print(table)


#: Sub-commands; any other first argument is a DATA_DIR for ``run``.
COMMANDS = frozenset({"run", "compare", "predict", "export", "imagenet"})


def normalize_args(argv: list[str]) -> list[str]:
    """Make ``advise DATA_DIR ...`` mean ``advise run DATA_DIR ...``.

    Example:
        >>> normalize_args(["photos", "--dry-run"])
        ['run', 'photos', '--dry-run']
    """
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        return ["run", *argv]
    return list(argv)


def main() -> None:
    """Console-script entry point."""
    app(args=normalize_args(sys.argv[1:]), prog_name="advise")


if __name__ == "__main__":  # pragma: no cover
    main()
