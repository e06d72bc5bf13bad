"""Click options, types and parsers shared by the ``smie`` commands, defined once (``cli.py`` and
:mod:`smie.pipeline.tools.commands` use them).

Every option is validated where it is declared: numbers through ranged types (``click.IntRange``, :class:`Real`,
which also refuses NaN and infinities), paths through ``click.Path`` types that say whether a file or a
directory is expected and whether it must exist, devices through :data:`DEVICE`. Rules between options run in
:class:`Checked` commands once all options are parsed and end in a ``click.UsageError`` naming both options.
A bad value therefore stops at parsing (exit code 2) with click's ``Error:`` line, before any pipeline code
runs. docs/bad-inputs.md lists what each kind of bad value gets; tests/test_option_walk.py walks them all.

Each shared option is a ``functools.partial`` of ``click.option``: call it with overrides, e.g.
``device_option(default="cpu")``. Only click is imported here, so ``smie --help`` stays instant.
"""
from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from smie.pipeline.registry import DATASETS, names  # data only: no torch


class Real(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and +-inf (a NaN passes every bound of a plain FloatRange)."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class Numbers(click.ParamType):
    """A comma list of numbers (``0.1,0.5``), each checked by ``item`` (a ranged type); ``length`` fixes the
    count. Returns a tuple."""

    name = "numbers"

    def __init__(self, item: click.ParamType, length: int | None = None):
        self.item, self.length = item, length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        if isinstance(value, tuple):
            return value
        parts = [v.strip() for v in str(value).split(",") if v.strip()]
        if not parts or (self.length is not None and len(parts) != self.length):
            count = f"{self.length} " if self.length else ""
            self.fail(f"expected {count}comma-separated numbers, e.g. {self.example()}; got {value!r}.", param, ctx)
        return tuple(self.item.convert(v, param, ctx) for v in parts)

    def example(self) -> str:
        return "1024,512" if isinstance(self.item, click.IntRange) else "0.1,0.5"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "N,N" if self.length == 2 else "X[,X...]"


class Device(click.ParamType):
    """A torch device name: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``,
    ``xpu[:N]``. Whether it exists on this machine is checked when the command runs."""

    name = "device"
    PATTERN = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d{1,3})?")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not self.PATTERN.fullmatch(str(value)):
            self.fail(f"{value!r} is not a device; use auto, cpu, cuda, cuda:N or mps.", param, ctx)
        return str(value)


class LabelPattern(click.ParamType):
    """A file-name pattern with a ``{label}`` field and other ``{name}`` fields, e.g.
    ``dataset-1_{label}_{style}_{id}`` (``smie prepare --format bvh``)."""

    name = "pattern"
    FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        fields = self.FIELD.findall(text)
        stray = self.FIELD.sub("", text)
        if "label" not in fields or "{" in stray or "}" in stray or len(set(fields)) != len(fields):
            self.fail(f"{text!r} is not a label pattern: it needs one {{label}} field, other fields as {{name}} "
                      "(each once), e.g. 'dataset-1_{label}_{style}_{id}'.", param, ctx)
        return text


class Checked(click.Command):
    """A command whose options are also checked against each other once all are parsed: each rule takes the
    parsed parameters and returns a message naming both options when they disagree (a ``click.UsageError``,
    exit code 2), else None. ``make_context`` runs the rules too, so a parse alone proves a command line good."""

    def __init__(self, *args: Any, rules: Iterable[Callable[[dict], str | None]] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rules = tuple(rules)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            for rule in self.rules:
                problem = rule(ctx.params)
                if problem:
                    raise click.UsageError(problem, ctx)
        return rest


# --- types -------------------------------------------------------------------------------------------------------
# Paths: what the option names, whether it must exist. Inputs are checked for existence and kind by click; what
# is inside them by the pipeline's checked readers (features/store.py), which name the file and the problem.
PathArg = click.Path(path_type=Path)                                       # anything, e.g. an optional output
OutFile = click.Path(path_type=Path, dir_okay=False)                        # a file to write
OutDir = click.Path(path_type=Path, file_okay=False)                        # a directory to write into
InFile = click.Path(path_type=Path, exists=True, dir_okay=False)            # a file to read
InDir = click.Path(path_type=Path, exists=True, file_okay=False)            # a directory to read (run directories)
ExistingPath = click.Path(path_type=Path, exists=True)                      # raw data: a file or a directory

# Numbers: the bounds are what the step can do; the upper ones catch typos (an extra digit) before hours of work.
SEED = click.IntRange(0, 2**32 - 1)              # numpy's seed range
EPOCHS = click.IntRange(1, 100_000)
BATCH = click.IntRange(1, 1 << 20)
COUNT = click.IntRange(1, 1_000_000)             # samples, views, points, rows ...
FRAMES = click.IntRange(2, 100_000)
DROP = click.IntRange(0, 100_000)                # frames removed by the keyframe masking
WORKERS = click.IntRange(0, 256)                 # extra processes (0: none)
PROCESSES = click.IntRange(1, 256)               # processes doing the work (at least this one)
LR = Real(0, 10, min_open=True)
SCALE = Real(0, 100, min_open=True)              # a multiplier of a default (epochs)
NONNEG = Real(0, 1e6)                            # margins, weights, noise
DEVICE = Device()

DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ..."
CENTERS = click.Choice(["first", "frame", "none"])


def options(*decorators: Callable) -> Callable:
    """Stack decorators in reading order: ``@options(a, b)`` is ``@a`` above ``@b`` (help lists a, then b)."""
    def apply(fn: Callable) -> Callable:
        for decorate in reversed(decorators):
            fn = decorate(fn)
        return fn
    return apply


out_option = partial(click.option, "--out", required=True, type=OutFile)  # help= says what; type=OutDir for a folder
input_option = partial(click.option, "--input", required=True, type=ExistingPath)
device_option = partial(click.option, "--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP)
seed_option = partial(click.option, "--seed", type=SEED, default=0, show_default=True)
no_resume_option = partial(click.option, "--no-resume", is_flag=True,
                           help="Start over instead of resuming an interrupted run.")
skeletons_option = partial(click.option, "--skeletons", required=True, type=InFile,
                           help="Skeleton cache from `smie prepare`.")
visual_option = partial(click.option, "--visual", required=True, type=InFile)
text_option = partial(click.option, "--text", required=True, type=InFile, help="Text cache.")
kinds_option = partial(click.option, "--kind", "kinds", multiple=True, default=("label",), show_default=True)
combine_option = partial(click.option, "--combine", default="concat", show_default=True,
                         type=click.Choice(["concat", "mean", "concat-raw"]),
                         help="How several --kind vectors fuse: each L2-normalised then concatenated (concat) or "
                              "averaged (mean), or concatenated raw then one L2 norm (concat-raw: MSF's code).")
splits_option = partial(click.option, "--split", multiple=True)  # evaluation splits or fold sets; help= per command
gzsl_option = partial(click.option, "--gzsl", is_flag=True)
epochs_option = partial(click.option, "--epochs", type=EPOCHS, default=None, show_default=True)  # None: the step's own
lr_option = partial(click.option, "--lr", type=LR, default=None, show_default=True)
batch_size_option = partial(click.option, "--batch-size", type=BATCH, default=128, show_default=True)
val_features_option = partial(click.option, "--val-features", default="auto", show_default=True,
                              type=click.Choice(["auto", "validation", "main"]),
                              help="Features the validation phase selects on: the validation backbone's (honest; "
                                   "auto when the cache has them) or the main backbone's (optimistic).")
stats_options = options(
    click.option("--reference", default=None, help="Method the others are tested against (default: best mean)."),
    click.option("--test", default="wilcoxon", type=click.Choice(["wilcoxon", "bootstrap"]), show_default=True,
                 help="Paired test over folds x seeds (exact Wilcoxon signed-rank or paired bootstrap)."))
compute_options = options(  # stage two's speed paths (smie.pipeline.zsl.compute); --compute-* become a Compute
    click.option("--cpu-matmul", "compute_matmul", type=click.Choice(["auto", "onednn", "torch"]), default="auto", show_default=True, envvar="SMIE_MATMUL",
                 show_envvar=True, help="CPU float32 products: auto (oneDNN's kernel on an AVX-512 CPU, else torch's "
                 "own), onednn or torch. Changes no number beyond float rounding."),
    click.option("--heap", "compute_heap", type=click.Choice(["keep", "system"]), default="keep", show_default=True, envvar="SMIE_HEAP", show_envvar=True,
                 help="keep: this process reuses the memory stage two frees (glibc mallopt, set once here) instead "
                      "of faulting in fresh pages at every step; system: leave glibc's allocator alone."))
budget_option = partial(  # the SMIE family's step budget (smie.pipeline.zsl.budget)
    click.option, "--budget", type=click.Choice(["paper-steps", "code-epochs"]), default="paper-steps",
    show_default=True, help="paper-steps: the paper's optimiser steps (compressed at most 30x at a larger rate on "
    "small data; docs/evaluation.md); code-epochs: the epochs as the official code counts them.")
class_source = options(  # the three ways to name the classes: a skeleton cache, a data set name, or a class file
    click.option("--skeletons", type=InFile, help="Take the classes from a skeleton cache."),
    click.option("--dataset", type=click.Choice(names(DATASETS)), help="Built-in class table."),
    click.option("--classes", "classes_file", type=InFile, help="Class file: one name per line."))


# --- parsing helpers -----------------------------------------------------------------------------------------------

def floats(default: tuple[float, ...]) -> Callable:
    """Callback of a repeatable :class:`Numbers` option: ``--alpha 0.1 --alpha 0.5`` or ``--alpha 0.1,0.5`` ->
    (0.1, 0.5); ``default`` when none is given."""
    def parse(ctx: click.Context, param: click.Parameter, values: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
        return tuple(v for group in values for v in group) or default
    return parse


def epochs_exceed_warmup(params: dict) -> str | None:
    """fit-estimator: a run that ends inside its warm-up never trains at ``--lr`` and has no epoch after the
    warm-up to select on."""
    epochs, warmup = params.get("epochs"), params.get("warmup")
    if epochs is not None and warmup is not None and epochs <= warmup:
        return (f"--epochs {epochs} must exceed --warmup {warmup}: the run would end inside its warm-up (never at "
                f"the full --lr, no epoch after the warm-up to select on); raise --epochs or lower --warmup")
    return None


def fractions_leave_training(params: dict) -> str | None:
    """pretrain-backbone: the held-out seen-class fractions must leave samples to train on."""
    val, test = params.get("val_fraction"), params.get("test_fraction")
    if val is not None and test is not None and val + test >= 1:
        return (f"--val-fraction {val:g} and --test-fraction {test:g} add up to {val + test:g}, leaving no "
                f"seen-class sample to train on; keep their sum below 1")
    return None


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
