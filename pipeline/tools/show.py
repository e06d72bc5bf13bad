"""``smie show``: animate skeleton sequences (GIF, MP4) or draw one frame (PNG), optionally with the frames a
keyframe masking drops and the label ranking of a trained run.

Sources: a skeleton cache (``.h5`` from ``smie prepare``; sequences (N, C, T, V, M) as stored) or a raw file
or directory read by the reader of its format and preprocessed exactly as ``smie prepare`` does (valid frames,
centring, resampling to ``frames``). Samples are chosen by row ``index``, ``sample`` id or ``classes`` name
(the first sample of the class); ``grid`` takes one sample per class. Nothing chosen = the first sample.

``masking`` recomputes :func:`smie.pipeline.visual.keyframes.kept_frames` on the shown (C, T, V, M) sequence:
``paper`` removes the ``keyframes`` highest-motion frames, ``official`` also ``random_drop`` random frames,
drawn for the sample's row in the cache with ``seed`` (for a cache sample, view 0 of what ``smie
extract-visual --seed`` cached). Dropped frames are drawn red (keyframes) or grey (random) and named in the
panel title; a strip under the skeleton shows every frame's motion and status.

``run`` adds the run's ZSL ranking: the softmax over the run's *unseen* classes of ``model.scores(features
(1, D), class_sem (U, E))``, the class semantics being those stored in the run, so no text encoder is needed.
The features come either from a visual cache ``visual`` (the row with the same sample id; the cache must come
from the backbone the run was trained on) or from ``backbone`` run on the shown sequence (a raw file is then
preprocessed with the backbone's frame count, bodies and training centring, as ``smie predict`` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, sniff
from smie.pipeline.tools.skeleton_draw import KEPT, KEYFRAME, RANDOM_DROP, PanelData, make_figure

MAX_PANELS = 36
OUT_SUFFIXES = (".gif", ".mp4", ".png")


@dataclass(frozen=True)
class ShowConfig:
    """``frame`` (0-based) is the still frame of a PNG (default the middle one); ``frames`` and ``center`` the
    resampled length and centring of raw sequences (default the backbone's, else 50 and ``first``);
    ``elev``/``azim`` the 3-D view in degrees."""

    source: Path
    out: Path
    index: tuple[int, ...] = ()
    sample: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    grid: bool = False
    format: str | None = None
    frames: int | None = None
    center: str | None = None
    masking: str | None = None
    keyframes: int = 15
    random_drop: int = 15
    seed: int = 0
    run: Path | None = None
    visual: Path | None = None
    backbone: Path | None = None
    top_k: int = 5
    frame: int | None = None
    fps: int = 10
    elev: float = 12.0
    azim: float = -60.0


@dataclass(frozen=True)
class Pool:
    """Candidate samples of a source: ``labels`` (N,) into ``class_names``, ``sample_ids`` (N,); :meth:`get`
    loads row ``i`` as (C, T, V, M) float32."""

    source: Path
    labels: np.ndarray
    sample_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    layout: object  # smie.pipeline.data.layouts.Layout: the bones drawn, the up axis
    loader: object  # callable(i) -> (C, T, V, M)

    def get(self, i: int) -> np.ndarray:
        return self.loader(i)


def _is_cache(path: Path) -> bool:
    return path.is_file() and sniff(path) == "hdf5"


def open_pool(cfg: ShowConfig, binfo=None) -> Pool:
    """The samples of ``cfg.source``: a skeleton cache read lazily row by row, or a raw input preprocessed."""
    from smie.pipeline.data.layouts import layout_of

    src = Path(cfg.source)
    if _is_cache(src):
        from smie.features.skeletons import iter_skeleton_chunks, read_skeleton_header

        head = read_skeleton_header(src)
        return Pool(src, head.labels, head.sample_ids, head.class_names, layout_of(head, str(src)),
                    lambda i: next(iter_skeleton_chunks(src, i, i + 1))[1][0])
    from smie.pipeline.data.preprocess import preprocess_sample
    from smie.pipeline.data.readers import load_raw
    from smie.pipeline.tools.predict import infer_format, prepare_settings

    center, bodies = prepare_settings(binfo, cfg.center) if binfo else (cfg.center or "first", 2)
    raw = load_raw(cfg.format or infer_format(src), src, max_bodies=bodies)
    if not raw.samples:
        raise SmieError(f"{src}: holds no usable sample ({'; '.join(r for _, r in raw.skipped) or 'empty'})")
    layout = layout_of(raw, str(src))
    if binfo is not None and not layout_of(binfo).same_skeleton(layout):
        raise SmieError(f"{src}: {layout.describe()} skeletons, but the backbone {cfg.backbone} expects "
                        f"{layout_of(binfo).describe()}")
    T = cfg.frames or (binfo.num_frames if binfo else 50)
    return Pool(src, np.array([s.label for s in raw.samples]), tuple(s.sample_id for s in raw.samples),
                raw.class_names, layout, lambda i: preprocess_sample(
                    raw.samples[i].data, layout, T, center, where=f"{src} {raw.samples[i].sample_id}")[0])


def choose(cfg: ShowConfig, pool: Pool) -> list[int]:
    """Rows to show: ``index`` rows, then ``sample`` ids, then ``classes``, then the grid; errors name the
    source file."""
    N, src = len(pool.labels), pool.source
    rows = []
    for i in cfg.index:
        if not 0 <= i < N:
            raise SmieError(f"{src}: index {i} is out of range (the file holds {N} samples, 0..{N - 1})")
        rows.append(i)
    where = {sid: i for i, sid in enumerate(pool.sample_ids)}
    for sid in cfg.sample:
        if sid not in where:
            raise SmieError(f"{src}: no sample with id {sid!r} (e.g. {', '.join(pool.sample_ids[:3])})")
        rows.append(where[sid])
    for name in cfg.classes:
        if name not in pool.class_names:
            raise SmieError(f"{src}: unknown class {name!r}; classes: {', '.join(pool.class_names)}")
        hits = np.flatnonzero(pool.labels == pool.class_names.index(name))
        if not len(hits):
            raise SmieError(f"{src}: no sample of class {name!r}")
        rows.append(int(hits[0]))
    if cfg.grid:
        rows += [int(np.flatnonzero(pool.labels == c)[0]) for c in np.unique(pool.labels)]
    rows = rows or [0]
    if len(rows) > MAX_PANELS:
        raise SmieError(f"{src}: {len(rows)} panels asked for, at most {MAX_PANELS}; pick classes with --class")
    return rows


def frame_status(x: np.ndarray, cfg: ShowConfig, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(T,) int8 KEPT/KEYFRAME/RANDOM_DROP and (T,) motion of ``x`` (C, T, V, M) under ``cfg.masking``."""
    import torch

    from smie.pipeline.visual.keyframes import keyframe_indices, kept_frames, motion_attention

    C, T, V, M = x.shape
    xt = torch.from_numpy(np.ascontiguousarray(x[None]))
    try:
        kept = kept_frames(xt, cfg.masking, cfg.keyframes, cfg.random_drop, 1, cfg.seed, np.array([row]))[0, 0]
    except ValueError as exc:
        raise SmieError(f"{cfg.source}: {exc}") from None
    motion = motion_attention(xt)
    status = np.full(T, RANDOM_DROP if cfg.masking == "official" else KEYFRAME, np.int8)
    status[keyframe_indices(motion, cfg.keyframes)[0].numpy()] = KEYFRAME
    status[kept.numpy()] = KEPT
    return status, motion[0].numpy()


def rankings(cfg: ShowConfig, pool: Pool, rows: list[int], seqs: list[np.ndarray], module, binfo) -> list[tuple]:
    """Per shown sample its top-k (class, softmax probability, is true) over the run's unseen classes."""
    import torch

    from smie.pipeline.zsl.rundir import load_run

    model, info = load_run(cfg.run)
    names, unseen = list(info.get("class_names") or []), list((info.get("split") or {}).get("unseen") or [])
    if not unseen or "class_sem" not in info:
        raise SmieError(f"{cfg.run}: records no unseen classes or class semantics to rank")
    want = info.get("backbone_sha256")
    if cfg.visual is not None:
        from smie.features.visual import read_visual

        vc = read_visual(cfg.visual)
        if want and vc.backbone_sha256 != want:
            raise SmieError(f"{cfg.visual}: made by another backbone than the run {cfg.run} was trained on")
        where = {sid: i for i, sid in enumerate(vc.sample_ids)}
        missing = [pool.sample_ids[r] for r in rows if pool.sample_ids[r] not in where]
        if missing:
            raise SmieError(f"{cfg.visual}: no features for sample id(s) {', '.join(missing)}")
        feats = torch.from_numpy(vc.features[[where[pool.sample_ids[r]] for r in rows]])
    else:
        from smie.pipeline.visual.backbones import embed

        if want and binfo.sha256 != want:
            raise SmieError(f"{cfg.backbone}: not the backbone the run {cfg.run} was trained on")
        x = np.stack(seqs)
        if x.shape[2] != binfo.num_frames:
            raise SmieError(f"{cfg.source}: {x.shape[2]}-frame sequences, the backbone expects {binfo.num_frames}")
        with torch.no_grad():
            feats = embed(module, torch.from_numpy(x), torch.device("cpu"))
    with torch.no_grad():
        scores = model.scores(feats.float(), info["class_sem"][unseen].float()).double().softmax(dim=1).numpy()
    out = []
    for r, p in zip(rows, scores):
        true = pool.class_names[pool.labels[r]] if pool.labels[r] >= 0 else None
        top = np.argsort(-p)[: cfg.top_k]
        out.append(tuple((names[unseen[j]], float(p[j]), names[unseen[j]] == true) for j in top))
    return out


def show(cfg: ShowConfig) -> Path:
    """Render ``cfg`` to ``cfg.out`` (``.gif``/``.mp4`` animated, ``.png`` one frame) with its provenance
    (PNG text chunk ``smie-provenance``; ``<out>.json`` beside a GIF/MP4). Returns ``cfg.out``."""
    from smie.pipeline.zsl.plots import picture_provenance

    out = Path(cfg.out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise SmieError(f"{out}: unknown picture type; use one of {', '.join(OUT_SUFFIXES)}")
    if out.suffix.lower() == ".mp4":
        from matplotlib import animation

        if not animation.writers.is_available("ffmpeg"):
            raise SmieError(f"{out}: writing MP4 needs ffmpeg on PATH, which is not installed; write a .gif instead")
    if cfg.run is not None and (cfg.visual is None) == (cfg.backbone is None):
        raise SmieError("--run needs the sample's features: give either --visual VISUAL.h5 or --backbone BACKBONE.pt")
    module = binfo = None
    if cfg.backbone is not None:  # its preprocessing applies to raw files, with or without --run
        from smie.pipeline.visual.backbones import load_backbone

        module, binfo = load_backbone(cfg.backbone, "cpu")  # one sequence per panel: the CPU is enough
    pool = open_pool(cfg, binfo)
    rows = choose(cfg, pool)
    seqs = [pool.get(r) for r in rows]
    ranks = rankings(cfg, pool, rows, seqs, module, binfo) if cfg.run is not None else [None] * len(rows)
    note = "run's ZSL ranking: softmax over its unseen classes"
    panels = []
    for r, x, rk in zip(rows, seqs, ranks):
        status, motion = frame_status(x, cfg, r) if cfg.masking else (None, None)
        name = pool.class_names[pool.labels[r]] if 0 <= pool.labels[r] < len(pool.class_names) else "?"
        panels.append(PanelData(x, f"{name[:34]}\n{pool.sample_ids[r][:34]}", status, motion, rk, note))
    T = seqs[0].shape[1]
    title = f"{pool.source.name}" + (f"  ·  masking {cfg.masking}" if cfg.masking else "")
    fig, drawn = make_figure(panels, pool.layout, cfg.elev, cfg.azim, title)
    prov = picture_provenance({"source": cfg.source, "run": cfg.run, "visual": cfg.visual, "backbone": cfg.backbone},
                              cfg, samples=[pool.sample_ids[r] for r in rows])
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if out.suffix.lower() == ".png":
            frame = T // 2 if cfg.frame is None else cfg.frame
            if not 0 <= frame < T:
                raise SmieError(f"--frame {frame} is outside the {T} frames (0..{T - 1})")
            for p in drawn:
                p.draw(frame)
            from smie.pipeline.zsl.plots import png_metadata

            fig.savefig(out, dpi=100, metadata=png_metadata(prov))
        else:
            save_animation(fig, drawn, T, out, cfg.fps, prov)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out


def save_animation(fig, drawn, T: int, out: Path, fps: int, prov: dict) -> None:
    """Write all ``T`` frames of ``drawn`` panels to a GIF (Pillow) or MP4 (ffmpeg), plus ``<out>.json``."""
    from matplotlib import animation

    from smie.pipeline.zsl.plots import write_sidecar

    if out.suffix.lower() == ".mp4":  # ffmpeg's presence was checked by show()
        writer = animation.FFMpegWriter(fps=fps, metadata={"comment": prov.get("command", "")})
    else:
        writer = animation.PillowWriter(fps=fps)

    def step(t):
        for p in drawn:
            p.draw(t)
        return []

    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    animation.FuncAnimation(fig, step, frames=T, blit=False).save(tmp, writer=writer, dpi=80)
    tmp.replace(out)
    write_sidecar(out, prov)
