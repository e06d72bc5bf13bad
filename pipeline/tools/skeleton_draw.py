"""Drawing helpers of ``smie show``: one panel per sequence, made of a 3-D skeleton, an optional masking strip and
an optional label ranking, laid out as small multiples on one figure.

A sequence is (C, T, V, M) float32 (coordinates, frames, joints, bodies) in the layout's axes, right-handed.
For a **y-up** layout (Kinect camera space: x to the subject's right, y up, z the depth away from the camera;
BVH's usual axes) the 3-D view plots (-x, z, y): y becomes the vertical axis, and negating x keeps the
coordinate system right-handed, so the picture is not mirrored (a subject's left arm raised towards the camera
appears on the viewer's right); ``azim=-90, elev=0`` looks from the camera, the default (``-60``, ``12``) from
slightly above and to the side. A **z-up** layout is plotted as it is (x, y, z). Every body present in some
frame is drawn (body 0 blue, body 1 orange; left limbs lighter, right limbs darker, sides read from the joint
names: ``left ...``, ``..._L``, ``L_...``), a body absent in a frame (all zeros) is hidden there, and the axes
are one cube over all frames and bodies of the panel, fixed for the whole animation. Bones are the layout's
``bones`` (child, parent) pairs, a custom layout's included.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from smie.pipeline.data.layouts import Layout

KEPT, KEYFRAME, RANDOM_DROP = 0, 1, 2  # frame status under a masking variant
STATUS_COLORS = {KEYFRAME: "#d62728", RANDOM_DROP: "#9e9e9e"}
STATUS_TEXT = {KEYFRAME: "DROPPED: keyframe", RANDOM_DROP: "DROPPED: random"}
BODY_COLORS = (("#5d6d7e", "#5dade2", "#1a3f8f"), ("#7b6a58", "#f5b041", "#a04000"))  # (torso, left, right)


@dataclass(frozen=True)
class PanelData:
    """One panel: ``x`` (C, T, V, M); ``status`` (T,) int8 of KEPT/KEYFRAME/RANDOM_DROP and ``motion`` (T,)
    float when a masking is shown; ``ranking`` [(class name, probability, is the true class)] best first."""

    x: np.ndarray
    title: str
    status: np.ndarray | None = None
    motion: np.ndarray | None = None
    ranking: tuple[tuple[str, float, bool], ...] | None = None
    ranking_note: str = ""


def present(x: np.ndarray) -> np.ndarray:
    """(C, T, V, M) -> (T, M) bool: the body has a non-zero joint in the frame."""
    return np.abs(x).sum(axis=(0, 2)) > 0


def to_plot(x: np.ndarray, up: str = "y") -> np.ndarray:
    """(C=3, ...) coordinates -> (3, ...) plot coordinates with the ``up`` axis vertical, a rotation (no mirror):
    (-x, z, y) for y up, (x, y, z) for z up."""
    return np.stack([-x[0], x[2], x[1]]) if up == "y" else np.stack([x[0], x[1], x[2]])


def cube(x: np.ndarray, up: str = "y") -> tuple[np.ndarray, float]:
    """Centre (3,) and half side of the smallest cube (plot coordinates) holding every present joint of
    ``x`` (C, T, V, M), with a 5 % margin; a unit cube when nothing is present."""
    pts = to_plot(x, up).transpose(1, 3, 2, 0)[present(x)].reshape(-1, 3)  # (T', M', V, 3) -> (P, 3)
    if not len(pts):
        return np.zeros(3), 1.0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (lo + hi) / 2, float(max((hi - lo).max() / 2 * 1.05, 0.05))


def side(name: str) -> int:
    """0 torso, 1 left, 2 right from a joint name: ``left hip``, ``LeftUpLeg``, ``Shoulder_L``, ``l_knee``."""
    n = name.lower()
    for code, word, letter in ((1, "left", "l"), (2, "right", "r")):
        if word in n or re.search(rf"(^|[^a-z]){letter}([^a-z]|$)", n):
            return code
    return 0


def _sides(layout: Layout) -> list[int]:
    """Per bone 0 torso, 1 left, 2 right (from the child joint's name)."""
    return [side(layout.joint_names[c]) for c, _ in layout.bones]


class SkeletonPanel:
    """The artists of one panel on ``fig`` inside ``spec`` (a gridspec cell); :meth:`draw` shows frame ``t``."""

    def __init__(self, fig, spec, data: PanelData, layout: Layout, elev: float = 12.0, azim: float = -60.0):
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        self.data, self.layout = data, layout
        C, T, V, M = data.x.shape
        rows = [3.4] + ([0.6] if data.status is not None else []) + \
               ([0.35 + 0.22 * len(data.ranking)] if data.ranking else [])
        sub = spec.subgridspec(len(rows), 1, height_ratios=rows, hspace=0.35)
        ax = self.ax = fig.add_subplot(sub[0], projection="3d")
        up = layout.up_axis
        centre, half = cube(data.x, up)
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            setter(c - half, c + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.1)
        ax.view_init(elev=elev, azim=azim)
        ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])
        ax.set_ylabel("depth z" if up == "y" else "y", fontsize=7, labelpad=-12)
        ax.set_zlabel(f"{up} (up)", fontsize=7, labelpad=-12)
        self.pts = to_plot(data.x, up)  # (3, T, V, M)
        self.here = present(data.x)  # (T, M)
        self.bodies = [m for m in range(M) if self.here[:, m].any()]
        sides = _sides(layout)
        self.base_colors = {m: [BODY_COLORS[m % 2][s] for s in sides] for m in self.bodies}
        self.bones = np.asarray(layout.bones)
        self.lines = {m: ax.add_collection3d(Line3DCollection(np.zeros((len(self.bones), 2, 3)), linewidths=2.2,
                                                              colors=self.base_colors[m]), autolim=False)
                      for m in self.bodies}
        self.joints = {m: ax.plot([], [], [], "o", ms=2.2, color=BODY_COLORS[m % 2][0])[0] for m in self.bodies}
        self.strip = self.cursor = None
        if data.status is not None:
            self._strip(fig.add_subplot(sub[1]))
        if data.ranking:
            self._ranking(fig.add_subplot(sub[-1]))

    def _strip(self, ax) -> None:
        status, T = self.data.status, len(self.data.status)
        motion = self.data.motion if self.data.motion is not None else np.ones(T)
        colors = [STATUS_COLORS.get(int(s), "#2e86c1") for s in status]
        ax.bar(np.arange(T), motion / max(float(motion.max()), 1e-12), width=0.9, color=colors)
        self.cursor = ax.axvline(0, color="black", lw=1)
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_yticks([])
        ax.tick_params(labelsize=6, length=2)
        drops = int((status == RANDOM_DROP).sum())
        ax.set_title(f"motion per frame; dropped: {int((status == KEYFRAME).sum())} keyframes (red)"
                     + (f", {drops} random (grey)" if drops else ""), fontsize=6, pad=2)
        self.strip = ax

    def _ranking(self, ax) -> None:
        """Bars of the top-k probabilities, names written inside the bars (no margin needed for them)."""
        ranking = self.data.ranking
        y = np.arange(len(ranking))[::-1]
        ax.barh(y, [p for _, p, _ in ranking], height=0.8,
                color=["#82e0aa" if ok else "#d5d8dc" for *_, ok in ranking])
        for yy, (name, p, ok) in zip(y, ranking):
            ax.text(0.01, yy, f"{p:.2f}  {name[:34]}" + ("  (true)" if ok else ""), va="center", fontsize=6)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.5, len(ranking) - 0.5)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=6, length=2)
        ax.set_title(self.data.ranking_note, fontsize=6, pad=2)

    def draw(self, t: int) -> None:
        """Show frame ``t``: bone segments of each present body, coloured by the frame's masking status."""
        status = int(self.data.status[t]) if self.data.status is not None else KEPT
        for m in self.bodies:
            if self.here[t, m]:
                p = self.pts[:, t, :, m].T  # (V, 3)
                segs = np.stack([p[self.bones[:, 0]], p[self.bones[:, 1]]], axis=1)  # (B, 2, 3)
                self.joints[m].set_data_3d(p[:, 0], p[:, 1], p[:, 2])
            else:
                segs = np.zeros((0, 2, 3))
                self.joints[m].set_data_3d([], [], [])
            self.lines[m].set_segments(segs)
            self.lines[m].set_color(STATUS_COLORS[status] if status else self.base_colors[m])
            self.joints[m].set_alpha(0.35 if status else 1.0)
        T = self.pts.shape[1]
        mark = f"  [{STATUS_TEXT[status]}]" if status else ""
        self.ax.set_title(f"{self.data.title}\nframe {t + 1}/{T}{mark}", fontsize=7,
                          color=STATUS_COLORS.get(status, "black"))
        if self.cursor is not None:
            self.cursor.set_xdata([t, t])


def layout_grid(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels: one row up to 4, else near square with at most 6 columns."""
    cols = n if n <= 4 else min(6, int(np.ceil(np.sqrt(n))))
    return int(np.ceil(n / cols)), cols


def make_figure(panels: list[PanelData], layout: Layout, elev: float, azim: float, title: str = ""):
    """A figure of small multiples, one :class:`SkeletonPanel` per entry of ``panels``; returns (fig, panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = layout_grid(len(panels))
    extra = (0.6 if any(p.status is not None for p in panels) else 0) + \
            max((0.35 + 0.22 * len(p.ranking) for p in panels if p.ranking), default=0)
    height = (3.4 + extra) * rows + (0.35 if title else 0)
    fig = plt.figure(figsize=(3.2 * cols, height))
    gs = fig.add_gridspec(rows, cols, left=0.04, right=0.97, bottom=0.3 / height,
                          top=1 - (0.95 if title else 0.5) / height,
                          wspace=0.25 if any(p.ranking for p in panels) else 0.05, hspace=0.25)
    drawn = [SkeletonPanel(fig, gs[i // cols, i % cols], p, layout, elev, azim) for i, p in enumerate(panels)]
    if title:
        fig.suptitle(title, fontsize=9)
    return fig, drawn
