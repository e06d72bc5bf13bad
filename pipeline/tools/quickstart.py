"""``smie quickstart``: the whole pipeline on the embedded synthetic set (or your data), in one resumable command.

Stages, each a call of the step's own pipeline function with its own config, so each can be rerun by hand with
the ``smie`` command that ``INDEX.md`` shows: (synthetic data) -> prepare -> pretrain-backbone -> extract-visual
-> embed-labels (MiniLM, offline) -> fit-estimator (SMIE) -> fit-baseline (one baseline) -> fit-baseline
(smie-fusion). Every file lands in
``workdir``; finished stages are skipped on a rerun (see :mod:`smie.pipeline.tools.workdir`).

Sizes: ``default`` is chosen so that the whole run takes about 2 minutes on 2 idle CPU cores (the budget and the
measured stage times are written to ``INDEX.md``; ``bench/quickstart_floor.py`` sets them against each stage's
compute floor); ``tiny`` is the CI smoke run. The backbone trains far fewer epochs than the papers' 150
(``epochs`` overrides them); SMIE and smie-fusion run SMIE's step budget (:mod:`smie.pipeline.zsl.budget`). For
faithful runs use the individual commands, whose defaults are the papers'.

Progress: a bar over the stages (on a terminal), under it each step's own bars (prepare, pretraining epochs,
text encoding), and one line per stage with its wall and CPU time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from smie.features.store import SmieError
from smie.pipeline.tools.quickstart_stages import SIZES, head_stages, results_table, tail_stages
from smie.pipeline.tools.workdir import clear_outputs, fingerprint, is_complete, read_state, write_index, write_state

BUDGET_S = 180


@dataclass(frozen=True)
class QuickstartConfig:
    """``data`` None = the embedded synthetic set; ``split`` None = ``random:U:seed=<seed>`` with U ~ 1/4 of the
    classes (4 of the 16 synthetic ones); ``epochs`` None = the size's backbone epochs."""

    workdir: Path = Path("smie-work")
    data: Path | None = None
    format: str | None = None
    split: str | None = None
    size: str = "default"
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    baseline: str = "devise"
    encoder: str = "minilm"


@dataclass
class QuickstartResult:
    """``metrics``: method -> {"zsl": unseen-class top-1, "seen"/"unseen"/"h": GZSL accuracies and harmonic
    mean}; ``seconds``: stage -> wall time this run (0 for skipped stages); ``skipped``: stages found complete."""

    workdir: Path
    index: Path
    table: str
    metrics: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    plots: tuple[Path, ...] = ()


def _header(cfg: QuickstartConfig, workdir: Path, data_note: str) -> str:
    opts = {f: getattr(cfg, f) for f in ("data", "format", "split", "size", "epochs", "device", "seed", "baseline",
                                         "encoder") if getattr(cfg, f) != getattr(QuickstartConfig, f)}
    flags = "".join(f" --{k} {v}" for k, v in opts.items())
    return (
        f"# smie work directory ({cfg.size} quickstart)\n\n"
        f"Made by `smie quickstart --workdir {workdir}{flags}`. {data_note}\n"
        "Every file below was written by one stage; the command under each stage reruns it by hand "
        "(from any directory: the paths are absolute). `smie quickstart` again skips stages whose files exist "
        "and whose settings are unchanged (`quickstart-state.json` records them); delete a file to redo its stage.\n\n"
        f"Budget: the {cfg.size} size ({SIZES[cfg.size].describe()})"
        + (f" aims at under {BUDGET_S} s in all on 2 CPU cores" if cfg.size == "default" else " is a smoke run")
        + "; the wall and CPU seconds are what this machine took (wall time grows "
        "when other programs share the cores). "
        "The backbone's epochs are far below the papers' (it only has to show the pipeline working); SMIE and "
        "smie-fusion run SMIE's real step budget (docs/evaluation.md); see README for faithful settings."
    )


def _run_stages(stages, workdir: Path, state: dict, fps: dict, ran: set, bar, echo) -> dict:
    """Run every stage of ``stages`` that is not complete; return {stage: seconds} (0 when skipped).

    ``fps`` (stage -> fingerprint) and ``ran`` (stages run now) carry over between calls."""
    seconds = {}
    for st in stages:
        i, total = len(fps) + 1, bar.total
        bar.set_postfix_str(st.name)
        fps[st.name] = fingerprint(st, fps)
        if not (ran & set(st.deps)) and is_complete(st, fps[st.name], state):
            echo(f"[{i}/{total}] {st.name}: done already ({st.outputs[0].name}), skipped")
            seconds[st.name] = 0.0
            bar.update(1)
            continue
        resumable = not (ran & set(st.deps)) and state.get(st.name, {}).get("started") == fps[st.name]
        ran.add(st.name)
        echo(f"[{i}/{total}] {st.name} -> {st.outputs[0]}" + (" (resuming)" if resumable and st.scratch else ""))
        clear_outputs(st, workdir, keep_scratch=resumable)
        state[st.name] = {"started": fps[st.name]}
        write_state(workdir, state)
        t0, c0 = time.perf_counter(), time.process_time()
        st.run(st.config)
        seconds[st.name] = time.perf_counter() - t0
        cpu = time.process_time() - c0
        state[st.name] = {"fingerprint": fps[st.name], "seconds": round(seconds[st.name], 2),
                          "cpu_seconds": round(cpu, 2)}
        write_state(workdir, state)
        echo(f"      {st.name} took {seconds[st.name]:.1f} s ({cpu:.1f} s CPU)")
        bar.update(1)
    return seconds


def _check_baseline(name: str) -> None:
    """Fail before any training if the baseline is unknown or needs description kinds quickstart does not make."""
    from smie.pipeline.registry import METHODS
    from smie.pipeline.zsl.spec import method_spec

    usable = sorted(m for m in METHODS if set(method_spec(m).kinds) <= {"label"})
    if name not in usable:
        why = "is unknown" if name not in METHODS else "needs LLM descriptions (run its stages by hand)"
        raise SmieError(f"baseline {name!r} {why}; quickstart can run: {', '.join(usable)}")


def quickstart(cfg: QuickstartConfig, echo=None) -> QuickstartResult:
    """Run (or resume) every stage in ``cfg.workdir``, print the results table and return it.

    ``echo`` receives every progress and result line (default: printed above the progress bar)."""
    from tqdm import tqdm

    from smie.features.skeletons import read_skeleton_header

    if cfg.size not in SIZES:
        raise SmieError(f"unknown quickstart size {cfg.size!r}; choose one of {', '.join(SIZES)}")
    if cfg.data is None and cfg.format is not None:
        raise SmieError("--format is given without --data; give both, or neither for the synthetic set")
    if cfg.data is not None and cfg.format is None:
        raise SmieError("--data needs --format (the format of the data, see `smie prepare`)")
    _check_baseline(cfg.baseline)
    workdir = Path(cfg.workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    head, data_note = head_stages(cfg, workdir)
    state, fps, ran = read_state(workdir), {}, set()
    with tqdm(total=len(head) + 6, desc="smie quickstart", unit="stage", disable=None) as bar:
        echo = echo or bar.write
        seconds = _run_stages(head, workdir, state, fps, ran, bar, echo)
        num_classes = len(read_skeleton_header(head[-1].outputs[0]).class_names)
        tail = tail_stages(cfg, workdir, num_classes)
        seconds.update(_run_stages(tail, workdir, state, fps, ran, bar, echo))
    stages = head + tail
    table, metrics, plots = results_table(stages)
    footer = ("## Results\n\n```\n" + table + "\n```\n\nPlots: "
              + ", ".join(f"`{p.relative_to(workdir)}`" for p in plots))
    index = write_index(workdir, stages, state, _header(cfg, workdir, data_note), footer)
    echo("")
    echo(table)
    echo("")
    if plots:
        echo("plots: " + ", ".join(str(p) for p in plots))
    echo(f"what each file is, and the command that remakes it: {index}")
    skipped = tuple(name for name, secs in seconds.items() if name not in ran)
    return QuickstartResult(workdir, index, table, metrics, seconds, skipped, tuple(plots))
