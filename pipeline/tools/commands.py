"""The ``smie`` commands around the two stages: quickstart, compare, benchmark, report, predict, show,
show-features, inspect, splits, synthetic. Thin, like ``cli.py``, which registers them on the ``smie`` group
(``TOOL_COMMANDS``): each parses its options, builds its step's frozen config, lazily imports one pipeline
function and prints where the result went.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from smie.pipeline.registry import ARCHS, DATASETS, METHODS, REPRO_PROTOCOLS, TABLES, names

from smie.pipeline.tools.cli_options import (
    CENTERS, COUNT, DROP, FRAMES, PROCESSES, SCALE, ExistingPath, InDir, InFile, OutDir, OutFile, PathArg, Real,
    batch_size_option, budget_option, combine_option, comma_list, compute_config, compute_options, device_option, done,
    epochs_option, kinds_option, no_resume_option, options, out_option, seed_option, skeletons_option,
    splits_option, stats_options, text_option, val_features_option, visual_option,
)


@click.command()
@click.argument("path", type=InFile)
def inspect(path: Path) -> None:
    """Print schema, shapes, class names and provenance of any smie file (.h5 cache or backbone .pt)."""
    from smie.pipeline.tools.inspect import inspect_file

    click.echo(inspect_file(path))


@click.command()
@click.option("--dataset", default=None, help=f"Only splits for this data set ({', '.join(names(DATASETS))}).")
def splits(dataset: str | None) -> None:
    """List the registered splits with their seen and unseen class names."""
    from smie.pipeline.data.splits import describe_splits

    click.echo(describe_splits(dataset))


@click.command()
@click.argument("runs", nargs=-1, required=True, type=InDir)
@click.option("--csv", "csv_path", type=OutFile, default=None, help="Also write the table as CSV.")
def report(runs: tuple[Path, ...], csv_path: Path | None) -> None:
    """Print a table of finished runs (fit-estimator, fit-baseline)."""
    from smie.pipeline.zsl.report import write_report

    click.echo(write_report(runs, csv_path))
    if csv_path:
        done("wrote", csv_path)


@click.command()
@click.argument("files", nargs=-1, required=True, type=ExistingPath)
@click.option("--backbone", required=True, type=InFile, help="Backbone checkpoint.")
@click.option("--estimator", "run", required=True, type=InDir, help="Run directory of fit-estimator.")
@click.option("--labels", multiple=True,
              help="Candidate action (free text); repeatable. Default: the run's unseen classes.")
@click.option("--label-template", default=None, help='Wrap candidates, e.g. "a person is {}" (default: the run\'s).')
@click.option("--center", type=CENTERS, default=None,
              help="Centring of the raw files (default: as the backbone's skeleton cache was prepared).")
@click.option("--format", default=None, help="Input format of the files (inferred when omitted).")
@click.option("--encoder", default=None, help="Text encoder (default: the one the run's text cache used).")
@click.option("--top-k", type=click.IntRange(1, 10_000), default=5, show_default=True)
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def predict(as_json: bool, **kw: Any) -> None:
    """Rank free-text candidate actions for raw skeleton files."""
    from smie.pipeline.tools.predict import PredictConfig, format_predictions, predict as run

    click.echo(format_predictions(run(PredictConfig(**kw)), as_json))


@click.command()
@visual_option(help="Visual cache; one per fold when comparing over a fold set (same order as --split).", multiple=True)
@options(text_option(), out_option(type=OutDir, help="Directory for the table, CSV and chart."))
@click.option("--methods", default="all", show_default=True, callback=comma_list,
              help=f"Comma list of methods ({', '.join(names(METHODS))}), or all.")
@splits_option(help="Splits or fold sets (default: each cache's own).")
@click.option("--seeds", type=click.IntRange(1, 1000), default=1, show_default=True, help="Seeds per method and split.")
@kinds_option()
@click.option("--no-gzsl", is_flag=True, help="Skip generalized ZSL.")
@click.option("--epochs-scale", type=SCALE, default=1.0, show_default=True, help="Scale every method's default epochs.")
@options(batch_size_option(default=None, help="Default: each method's own (64 for synse, msf; else 128)."),
         device_option(), val_features_option(), stats_options, no_resume_option(), budget_option())
@click.option("--jobs", type=PROCESSES, default=None,
              help="Runs in parallel, one process and torch thread each (default: the CPU cores; 1 on a GPU). "
                   "Results do not depend on it.")
@compute_options
def compare(no_gzsl: bool, no_resume: bool, **kw: Any) -> None:
    """Run every method on identical cached inputs and write a paper-style comparison table (resumable)."""
    from smie.pipeline.zsl.compare import CompareConfig, compare as run

    compute = compute_config(kw)
    done("comparison written", run(CompareConfig(gzsl=not no_gzsl, resume=not no_resume, compute=compute, **kw)))


@click.command()
@skeletons_option()
@out_option(type=OutDir, help="Benchmark directory (resumed when it exists).")
@click.option("--folds", type=click.IntRange(1, 1000), default=None,
              help="Seeded folds random:U:seed=0..K-1 (default 10 under 30 classes, else 5).")
@click.option("--unseen", type=click.IntRange(1, 100_000), default=None,
              help="Unseen classes per fold (default: a quarter).")
@click.option("--methods", default="all", show_default=True, callback=comma_list,
              help=f"Comma list of methods ({', '.join(names(METHODS))}), or all.")
@click.option("--seeds", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Stage-two seeds per fold and method.")
@click.option("--protocol", "protocols", multiple=True, default=("honest", "optimistic"), show_default=True,
              type=click.Choice(["honest", "optimistic"]), help="Selection features; repeatable.")
@click.option("--text", type=InFile, default=None, help="Text cache (default: embed the classes here).")
@click.option("--descriptions", multiple=True, type=InFile, help="Description JSONL to embed; repeatable.")
@options(kinds_option(), click.option("--encoder", default="minilm", show_default=True))
@click.option("--arch", default="stgcn", type=click.Choice(names(ARCHS)), show_default=True)
@click.option("--backbone-epochs", type=click.IntRange(1, 100_000), default=30, show_default=True)
@options(batch_size_option(default=16, help="Backbone batch size."),
         click.option("--views", type=click.IntRange(1, 1024), default=2, show_default=True),
         click.option("--keyframes", type=DROP, default=9, show_default=True),
         click.option("--random-drop", type=DROP, default=9, show_default=True))
@click.option("--epochs-scale", type=SCALE, default=1.0, show_default=True, help="Scale every method's default epochs.")
@options(stats_options, device_option())
def benchmark(**kw: Any) -> None:
    """Every method on K seeded folds with validation backbones: mean [95 % CI], paired tests, stage times."""
    from smie.pipeline.tools.benchmark import BenchmarkConfig, run_benchmark

    table = run_benchmark(BenchmarkConfig(**kw), log=click.echo)
    click.echo(table.read_text())
    done("benchmark written", table)


@click.command()
@out_option(help="npz file to write (smie's generic format).")
@click.option("--per-class", type=click.IntRange(1, 100_000), default=40, show_default=True, help="Samples per class.")
@click.option("--frames", "num_frames", type=FRAMES, default=60, show_default=True, help="Frames per sample.")
@seed_option()
@click.option("--noise", type=Real(0, 1), default=0.02, show_default=True, help="Joint noise std (metres).")
@click.option("--class", "classes", multiple=True, help="Only these classes (default: all); repeatable.")
def synthetic(classes: tuple[str, ...], **kw: Any) -> None:
    """Generate the embedded synthetic skeleton action set (ntu-25 layout, named classes) as an npz."""
    from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic

    path = generate_synthetic(SyntheticConfig(classes=classes or None, **kw))
    done("wrote synthetic data (procedurally generated, not recorded)", path)


@click.command()
@click.option("--workdir", default=Path("smie-work"), type=OutDir, show_default=True,
              help="Where every intermediate file lands (with an INDEX.md).")
@click.option("--data", type=ExistingPath, default=None, help="Real data instead of the embedded synthetic set.")
@click.option("--format", default=None, help="Format of --data (see `smie prepare`).")
@click.option("--split", default=None, help="Split spec (default: a seeded quarter of the classes unseen).")
@click.option("--size", default="default", type=click.Choice(["default", "tiny"]), show_default=True)
@options(epochs_option(help="Backbone epochs (default depends on --size)."), device_option(), seed_option())
@click.option("--baseline", default="devise", show_default=True, help="Baseline run beside SMIE (see fit-baseline).")
@click.option("--encoder", default="minilm", show_default=True, help="Text encoder (see embed-labels).")
def quickstart(**kw: Any) -> None:
    """Run the whole two-stage pipeline on the embedded synthetic data set (or --data) and print results."""
    from smie.pipeline.tools.quickstart import QuickstartConfig, quickstart as run

    res = run(QuickstartConfig(**kw), echo=click.echo)
    if not res.metrics:
        raise click.ClickException(f"quickstart produced no results; see {res.index}")


@click.command()
@click.argument("source", type=ExistingPath)
@out_option(help="Picture to write: .gif (animated), .mp4 (animated, needs ffmpeg) or .png (one frame).")
@click.option("--index", multiple=True, type=click.IntRange(0, 2**31 - 1), help="Sample row (0-based); repeatable.")
@click.option("--sample", multiple=True, help="Sample id; repeatable.")
@click.option("--class", "classes", multiple=True, help="Class name (its first sample); repeatable.")
@click.option("--grid", is_flag=True, help="One sample per class, as small multiples.")
@click.option("--format", default=None, help="Format of a raw SOURCE (inferred from the name when omitted).")
@click.option("--frames", type=FRAMES, default=None,
              help="Frames of raw sequences after resampling (default: the --backbone's, else 50).")
@click.option("--center", type=CENTERS, default=None, help="Centring of raw sequences (default first).")
@click.option("--masking", default=None, type=click.Choice(["official", "paper"]),
              help="Mark the frames this keyframe masking drops (see extract-visual).")
@options(click.option("--keyframes", type=DROP, default=15, show_default=True), click.option(
    "--random-drop", type=DROP, default=15, show_default=True), seed_option(help="Seed of the official masking's "
                                                                               "random drops."))
@click.option("--run", type=InDir, default=None, help="Run directory: add its ZSL label ranking.")
@visual_option(required=False, default=None, help="Visual cache holding the samples' features (for --run).")
@click.option("--backbone", type=InFile, default=None, help="Or: embed the samples with this backbone.")
@click.option("--top-k", type=click.IntRange(1, 10_000), default=5, show_default=True)
@click.option("--frame", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Frame of a .png (0-based; default the middle one).")
@click.option("--fps", type=click.IntRange(1, 1000), default=10, show_default=True)
@options(click.option("--elev", type=Real(-360, 360), default=12.0, show_default=True), click.option(
    "--azim", type=Real(-360, 360), default=-60.0, show_default=True,
    help="View angles in degrees (azim -90, elev 0: from the camera)."))
def show(**kw: Any) -> None:
    """Animate skeleton sequences from a skeleton cache or a raw file (GIF, MP4) or draw one frame (PNG)."""
    from smie.pipeline.tools.show import ShowConfig, show as run

    done("wrote", run(ShowConfig(**kw)))


@click.command("show-features")
@click.argument("visual", type=InFile)
@out_option(help="PNG to write.")
@click.option("--method", default="pca", type=click.Choice(["pca", "tsne"]), show_default=True,
              help="2-D embedding (tsne needs scikit-learn).")
@click.option("--text", type=InFile, default=None, help="Text cache: place the class semantics too.")
@options(kinds_option(), combine_option())
@click.option("--max-points", type=COUNT, default=3000, show_default=True, help="Samples drawn, evenly per class.")
@seed_option()
def show_features(**kw: Any) -> None:
    """2-D map (PCA or t-SNE) of a visual cache's features, seen and unseen classes marked."""
    from smie.pipeline.tools.show_features import ShowFeaturesConfig, show_features as run

    done("wrote", run(ShowFeaturesConfig(**kw)))


@click.command(help="Run every method of a published TABLE (" + ", ".join(TABLES) + ") on the paper's shared "
                    "features, under the published protocol (test-selected, oracle) and smie's honest one, beside "
                    "the published numbers.")
@click.argument("table", type=click.Choice(list(TABLES)))
@click.option("--features", required=True, type=InDir,
              help="SynSE-layout main feature folder of the table's split (e.g. ntu_results/shift_5_r).")
@click.option("--text", "text", required=True, multiple=True, type=InFile,
              help="Text cache (smie import-text-features); repeatable: each method reads the first with its kinds.")
@click.option("--out", type=OutDir, default=None, help="Directory to write (default: reproduce/<table>); reused.")
@click.option("--validation-folder", type=InDir, default=None,
              help="Its validation folder (default: the sibling shift_val_*_r).")
@click.option("--method", "methods", multiple=True, help="Only these methods of the table; repeatable.")
@click.option("--protocol", "protocols", multiple=True, type=click.Choice(list(REPRO_PROTOCOLS)),
              help="Only these protocols (default: both).")
@epochs_option(help="Every method's budget (default: each method's own, the official code's).")
@options(device_option(), seed_option())
def reproduce(table: str, out: Path | None, methods: tuple[str, ...], protocols: tuple[str, ...],
              **kw: Any) -> None:
    from smie.pipeline.tools.reproduce import PROTOCOLS, ReproduceConfig, reproduce as run

    out = out or Path("reproduce") / table.replace("/", "-")
    res = run(ReproduceConfig(table=table, out=out, methods=methods, protocols=protocols or PROTOCOLS, **kw))
    click.echo(res.table)
    done("wrote table.md, table.csv, results.json and runs/ in", res.out)


TOOL_COMMANDS = [inspect, show, show_features, splits, report, predict, compare, benchmark, synthetic, quickstart,
                 reproduce]
