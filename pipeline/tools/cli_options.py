"""Click options and parsers shared by the ``smie`` commands, defined once (``cli.py`` and
:mod:`smie.pipeline.tools.commands` use them).

Each shared option is a ``functools.partial`` of ``click.option``: call it with overrides, e.g.
``device_option(default="cpu")``. Only click is imported here, so ``smie --help`` stays instant.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import click

from smie.pipeline.registry import DATASETS, names

PathArg = click.Path(path_type=Path)
ExistingPath = click.Path(path_type=Path, exists=True)
DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ..."
CENTERS = click.Choice(["first", "frame", "none"])


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
compute_options = options(  # stage two's speed paths (smie.pipeline.zsl.compute); --compute-* become a Compute
    click.option("--cpu-matmul", "compute_matmul", default="auto", show_default=True, envvar="SMIE_MATMUL",
                 show_envvar=True, help="CPU float32 products: auto (oneDNN's kernel on an AVX-512 CPU, else torch's "
                 "own), onednn or torch. Changes no number beyond float rounding."),
    click.option("--heap", "compute_heap", default="keep", show_default=True, envvar="SMIE_HEAP", show_envvar=True,
                 help="keep: this process reuses the memory stage two frees (glibc mallopt, set once here) instead "
                      "of faulting in fresh pages at every step; system: leave glibc's allocator alone."))
class_source = options(  # the three ways to name the classes: a skeleton cache, a data set name, or a class file
    click.option("--skeletons", type=ExistingPath, help="Take the classes from a skeleton cache."),
    click.option("--dataset", type=click.Choice(names(DATASETS)), help="Built-in class table."),
    click.option("--classes", "classes_file", type=ExistingPath, help="Class file: one name per line."))


# --- parsing helpers -----------------------------------------------------------------------------------------------

def floats(default: tuple[float, ...]) -> Callable:
    """Callback: ``--alpha 0.1 --alpha 0.5`` or ``--alpha 0.1,0.5`` -> (0.1, 0.5); ``default`` when none is given."""
    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[float, ...]:
        try:
            return tuple(float(v) for text in values for v in text.split(",") if v.strip()) or default
        except ValueError:
            raise click.BadParameter(f"expected numbers, e.g. 0.1 or 0.1,0.5; got {' '.join(values)!r}") from None
    return parse


def hidden_widths(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(h) for h in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 2 or min(widths) < 1:
        raise click.BadParameter(f"expected two positive widths such as 1024,512; got {value!r}")
    return widths


def comma_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(value.split(","))


def compute_config(kw: dict) -> Any:
    """Pop ``--cpu-matmul``/``--heap`` from a stage-two command's keywords into the run's
    :class:`~smie.pipeline.zsl.compute.Compute` (a bad value is a ``SmieError``, as for every switch), and set the
    heap of this process: the command is its entry point."""
    from smie.pipeline.zsl.compute import Compute, apply_heap

    compute = Compute(matmul=kw.pop("compute_matmul"), heap=kw.pop("compute_heap"))
    apply_heap(compute)
    return compute


def done(message: str, path: Any) -> None:
    click.echo(f"{message}: {path}")
