"""Motion primitives and the named classes of the synthetic action set (see :mod:`smie.pipeline.data.synthetic`).

A class is a function ``motion(u, ang, yaw, lift, p)`` that adds to the local joint angles ``ang`` (T, V, 3)
radians (x: flexion, positive swings a hanging limb forward; z: abduction; y: twist), the body heading
``yaw`` (T,) and the body-frame translation ``lift`` (T, 3), given the action's progress ``u`` (T,) in [0, 1]
(0 before it starts, 1 after it ends) and the sample's ``p = {"amp", "cycles"}``. Left/right classes are one
primitive with a side sign: mirroring about the body's sagittal plane flips y and z rotations and keeps x.
"""
from __future__ import annotations

from functools import partial

import numpy as np

_D = np.pi / 180.0
# side -> (shoulder, elbow, hip, knee, ankle, sign of outward z/inward y rotation)
SIDE_JOINTS = {"left": (4, 5, 12, 13, 14, -1.0), "right": (8, 9, 16, 17, 18, 1.0)}
LUMBAR, SPINE_MID, NECK = 0, 1, 2


def bump(u: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over u in [0, 1]."""
    return np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 2


def ramp(u: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 (stays at 1)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def hold(u: np.ndarray, edge: float = 0.25) -> np.ndarray:
    """Rise over the first ``edge`` of the action, hold, fall over the last ``edge``."""
    return ramp(u / edge) * ramp((1.0 - u) / edge)


def _arm(ang, side, env, sh=(0, 0, 0), el=(0, 0, 0)):
    s_j, e_j, *_, sign = SIDE_JOINTS[side]
    mirror = np.array([1.0, sign, sign])
    ang[:, s_j] += env[:, None] * (np.array(sh) * mirror * _D)
    ang[:, e_j] += env[:, None] * (np.array(el) * mirror * _D)


def _leg(ang, side, hip=None, knee=None, ankle=None):
    _, _, h_j, k_j, a_j, _ = SIDE_JOINTS[side]
    for j, val in ((h_j, hip), (k_j, knee), (a_j, ankle)):
        if val is not None:
            ang[:, j, 0] += val * _D


def raise_arm(u, ang, yaw, lift, p, sides=("left",)):
    for side in sides:
        _arm(ang, side, hold(u), sh=(150 * p["amp"], 0, 15), el=(10, 0, 0))


def wave_hand(u, ang, yaw, lift, p, side="left"):
    env = hold(u)
    _arm(ang, side, env, sh=(15, 0, 95), el=(0, 0, 80))
    swing = 30 * p["amp"] * np.sin(2 * np.pi * p["cycles"] * u)
    _arm(ang, side, env * swing, el=(0, 0, 1))


def clap_hands(u, ang, yaw, lift, p):
    env = hold(u)
    inward = 12 + 8 * p["amp"] * np.cos(2 * np.pi * (p["cycles"] + 1) * u)
    for side in ("left", "right"):
        _arm(ang, side, env, sh=(75, 0, 0), el=(20, 0, 0))
        _arm(ang, side, env * inward, sh=(0, 1, 0))


def punch(u, ang, yaw, lift, p, side="right"):
    guard = hold(u, 0.15)
    for s in ("left", "right"):
        _arm(ang, s, guard, sh=(35, 0, 0), el=(110, 0, 0))
    strike = guard * np.maximum(0.0, np.sin(2 * np.pi * p["cycles"] * u)) ** 2
    _arm(ang, side, strike, sh=(55 * p["amp"], 10, 0), el=(-110, 0, 0))


def kick(u, ang, yaw, lift, p, side="left"):
    other = "right" if side == "left" else "left"
    _leg(ang, side, hip=75 * p["amp"] * bump(u), knee=-80 * bump(2 * u))
    _leg(ang, other, knee=-10 * bump(u))
    for s in ("left", "right"):
        _arm(ang, s, bump(u), sh=(0, 0, 20))


def squat(u, ang, yaw, lift, p):
    env = hold(u) * p["amp"]
    for side in ("left", "right"):
        _leg(ang, side, hip=95 * env, knee=-115 * env, ankle=25 * env)
        _arm(ang, side, env, sh=(70, 0, 0))
    ang[:, LUMBAR, 0] -= 25 * _D * env


def sit_down(u, ang, yaw, lift, p):
    env = ramp(u)
    for side in ("left", "right"):
        _leg(ang, side, hip=90 * env, knee=-90 * env)
        _arm(ang, side, env, sh=(25, 0, 0), el=(40, 0, 0))
    lift[:, 2] += 0.25 * env


def jump(u, ang, yaw, lift, p):
    crouch = bump(u / 0.4) + bump((u - 0.7) / 0.3)
    v = np.clip((u - 0.35) / 0.4, 0.0, 1.0)
    flight = 4 * v * (1 - v)
    for side in ("left", "right"):
        _leg(ang, side, hip=50 * crouch, knee=-60 * crouch, ankle=15 * crouch)
        _arm(ang, side, flight, sh=(140, 0, 10))
    lift[:, 1] += 0.35 * p["amp"] * flight


def bow(u, ang, yaw, lift, p):
    env = hold(u) * p["amp"]
    ang[:, LUMBAR, 0] -= 60 * _D * env
    ang[:, SPINE_MID, 0] -= 15 * _D * env
    ang[:, NECK, 0] -= 10 * _D * env
    for side in ("left", "right"):
        _arm(ang, side, env, sh=(60, 0, 0))


def turn_around(u, ang, yaw, lift, p):
    yaw += np.pi * min(p["amp"], 1.05) * ramp(u)
    steps = bump(u) * np.sin(2 * np.pi * 3 * u)
    _leg(ang, "left", hip=25 * steps, knee=-30 * np.abs(steps))
    _leg(ang, "right", hip=-25 * steps, knee=-30 * np.abs(steps))


def step_forward(u, ang, yaw, lift, p):
    lift[:, 2] -= 0.45 * p["amp"] * ramp(u)
    first, second = bump(2 * u), bump(2 * u - 1)
    _leg(ang, "left", hip=35 * first, knee=-40 * first)
    _leg(ang, "right", hip=35 * second, knee=-40 * second)
    _arm(ang, "left", second - first, sh=(20, 0, 0))
    _arm(ang, "right", first - second, sh=(20, 0, 0))


MOTIONS = {
    "raise left arm": partial(raise_arm, sides=("left",)),
    "raise right arm": partial(raise_arm, sides=("right",)),
    "raise both arms": partial(raise_arm, sides=("left", "right")),
    "wave left hand": partial(wave_hand, side="left"),
    "wave right hand": partial(wave_hand, side="right"),
    "clap hands": clap_hands,
    "punch forward with left hand": partial(punch, side="left"),
    "punch forward with right hand": partial(punch, side="right"),
    "kick with left leg": partial(kick, side="left"),
    "kick with right leg": partial(kick, side="right"),
    "squat down": squat,
    "sit down": sit_down,
    "jump up": jump,
    "bow": bow,
    "turn around": turn_around,
    "step forward": step_forward,
}
CLASSES: tuple[str, ...] = tuple(MOTIONS)
