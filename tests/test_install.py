"""The built wheel installs exactly one top-level name, ``smie``, with its data files, and coexists with
third-party top-level ``features`` / ``pipeline`` modules."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What never goes into a build copy: VCS data, environments, build outputs, caches, work files.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", ".dev", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "*.h5", "*.pt", "smie-work", "runs", ".whl", ".gl")

_PROBE = """
import json, sys
import features, pipeline
import smie, smie.features.store, smie.pipeline.data.splits, smie.cli
from smie.pipeline.data.splits import REGISTRY_PATH, registry
from smie.pipeline.data.classes import CLASS_DIR, class_table
from smie.prompts.prompt_template import BUILTIN_DIR, resolve_template
print(json.dumps({
    "features.NAME": features.NAME, "pipeline.NAME": pipeline.NAME,
    "features": features.__file__, "pipeline": pipeline.__file__,
    "smie": smie.__file__, "smie.features.store": smie.features.store.__file__,
    "smie.pipeline.data.splits": smie.pipeline.data.splits.__file__, "smie.cli": smie.cli.__file__,
    "splits.json": str(REGISTRY_PATH), "classes": str(CLASS_DIR), "templates": str(BUILTIN_DIR),
    "registry_keys": sorted(registry()), "msr0": class_table("msr")[0],
    "action_sha": resolve_template("action").sha256,
}))
"""


def _can_build_here() -> bool:
    """Whether this environment's setuptools can build a wheel by itself (it has bdist_wheel from 70.1 on;
    before that it needs the ``wheel`` package), so the build needs no index for its build requirements."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) if x.isdigit() else 0 for x in (setuptools.__version__.split(".") + ["0"])[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the repo (so the build writes nothing into it): offline with this
    environment's setuptools when it can, else the standard isolated build (which fetches its requirements)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_NOT_SOURCE)
    out = tmp / "dist"
    offline = ["--no-build-isolation", "--no-index"] if _can_build_here() else []
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "--no-cache-dir", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("smie-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _record(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        (record,) = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
        return [line.split(",")[0] for line in z.read(record).decode().splitlines() if line.strip()]


@pytest.mark.slow
def test_wheel_holds_only_smie_with_its_data(wheel):
    paths = _record(wheel)
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == sorted(paths), "RECORD and the wheel's contents differ"
    top = sorted({p.split("/")[0] for p in paths if not p.split("/")[0].endswith(".dist-info")})
    print(f"\nRECORD of {wheel.name}: {len(paths)} entries; top-level names {top}; dist-info "
          f"{sorted({p.split('/')[0] for p in paths} - set(top))}")
    assert top == ["smie"]
    files = set(paths)
    assert {"smie/__init__.py", "smie/__main__.py", "smie/cli.py", "smie/pipeline/data/splits.json"} <= files
    tsv = [p for p in files if p.startswith("smie/pipeline/data/classes/") and p.endswith(".tsv")]
    txt = [p for p in files if p.startswith("smie/prompts/templates/") and p.endswith(".txt")]
    assert tsv and txt
    assert sorted(p.name for p in (REPO / "pipeline/data/classes").glob("*.tsv")) == sorted(p.rsplit("/", 1)[1] for p in tsv)
    assert sorted(p.name for p in (REPO / "prompts/templates").glob("*.txt")) == sorted(p.rsplit("/", 1)[1] for p in txt)
    stray = [p for p in files if p.split("/")[1:2] in (["tests"], ["bench"], ["docs"]) or "/tests/" in p
             or "/bench/" in p or p.endswith((".h5", ".pt"))]
    assert not stray, stray


@pytest.mark.slow
def test_installed_smie_coexists_with_third_party_features_and_pipeline(wheel, tmp_path):
    target, other, cwd = tmp_path / "target", tmp_path / "thirdparty", tmp_path / "elsewhere"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir", "--target",
         str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")}
    assert installed - {"bin"} == {"smie"}, installed  # bin/: the console script
    (other / "features").mkdir(parents=True)
    (other / "features" / "__init__.py").write_text('NAME = "third-party features"\n')
    (other / "pipeline.py").write_text('NAME = "third-party pipeline"\n')
    cwd.mkdir()
    # TARGET first: the venv's editable install of this repo (a meta-path finder appended after the path
    # finder) must lose to it, or this test would pass on the source tree instead of the wheel.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(other)]), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONSAFEPATH", None)
    run = subprocess.run([sys.executable, "-c", _PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    print("\n" + json.dumps(got, indent=1))
    assert got["features.NAME"] == "third-party features" and got["pipeline.NAME"] == "third-party pipeline"
    assert Path(got["features"]) == other / "features" / "__init__.py"
    assert Path(got["pipeline"]) == other / "pipeline.py"
    smie_dir = target / "smie"
    assert Path(got["smie"]) == smie_dir / "__init__.py"
    assert Path(got["smie.features.store"]) == smie_dir / "features" / "store.py"
    assert Path(got["smie.pipeline.data.splits"]) == smie_dir / "pipeline" / "data" / "splits.py"
    assert Path(got["smie.cli"]) == smie_dir / "cli.py"
    assert Path(got["splits.json"]) == smie_dir / "pipeline" / "data" / "splits.json"
    assert Path(got["classes"]).parent == smie_dir / "pipeline" / "data"
    assert Path(got["templates"]).parent == smie_dir / "prompts"
    assert {"splits", "version"} <= set(got["registry_keys"]) and got["msr0"] == "high arm wave"
    assert len(got["action_sha"]) == 64

    cli = subprocess.run([sys.executable, "-m", "smie", "--help"], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "expand-labels" in cli.stdout
