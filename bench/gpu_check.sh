#!/usr/bin/env bash
# smie's GPU check: every CUDA code path run once on a real GPU, with figures, in one prepared script (issue 27).
#
#   OUT=/some/dir bash bench/gpu_check.sh            # on a CUDA machine; budgeted at 6 minutes on one H100
#   OUT=/some/dir bash bench/gpu_check.sh --dry-run  # the same steps at tiny sizes on the CPU (gloo for torchrun)
#
# On this workplace's GPU machine (which sets OUT): run `bash bench/gpu_check.sh` with carry [".whl"] and a
# timeout_s of about 450, so that a rerun of the failed steps (--only) still fits the 15-minute loan.
#
# Options: --dry-run; --only STEP[,STEP...] (rerun some steps; each builds what it needs); --budget SECONDS (the
# whole run's time limit: steps that would start past it are SKIPped, a running one is cut at it; default 360 on
# CUDA, 600 dry); --nproc N (torchrun processes for smie's commands; default 1 on CUDA, 2 dry: one GPU cannot hold
# two NCCL ranks, and two CPU ranks put smie's gloo process group, DDP and shard join to work); --python PY
# (default: $PYTHON or python3); --keep (keep the scratch directory and print where it is).
#
# Steps, in order (each runs under its own timeout; a failure is recorded and the next step runs):
#   install            the checkout, offline: pip install --no-deps --no-build-isolation --no-index -e .
#                      (dry: pip's --dry-run, so the environment running it is left alone), after the wheels
#                      in .whl/ when there are any (dry: installed into scratch for the device's Python 3.12 only)
#   env                Python, torch, CUDA, NCCL, the GPU; smie must be imported from this checkout
#   gpu-tests          python -m pytest -m gpu on the test files that hold gpu tests (dry: they skip)
#   torchrun-pipeline  smie synthetic + prepare --format npz (NTU shape: 50 frames, 25 joints, 2 bodies), then
#                      torchrun -m smie pretrain-backbone and extract-visual (NCCL where WORLD_SIZE > 1, gloo dry)
#   ddp-smoke          torchrun with an explicit NCCL (dry: gloo) process group, a DDP smie backbone, one bf16 step:
#                      smie joins a process group only when WORLD_SIZE > 1, so on one GPU this is the NCCL check
#   agree-backbone     the same checkpoint extracted on the CPU (float32) against the GPU cache: bf16 tolerance
#   agree-stage2       the same small fit-estimator (seed 0) on CPU and GPU: losses and ZSL within float tolerance
#                      (dry: CPU twice, which must agree bit for bit)
#   backbone-throughput  bench/backbone_throughput.py: training and inference sequences/s at (128, 3, 50, 25, 2)
#   extract-throughput   bench/extract_throughput.py: extract-visual sequences/s on 8192 NTU-shaped sequences
#   stage2-cost        bench/stage2_cost.py: one estimator experiment, official loop against the cache
#   fit-ntu60          smie fit-estimator, 100 epochs, on a 40,000 x 256 synthetic NTU-60-size cache (60 classes,
#                      5 unseen, 4 masked views) with the whole cache on the device; must beat twice chance
#
# Output, all under $OUT (default bench-out/gpu-check): summary.txt (PASS/FAIL per step, seconds, headline
# figures), figures.json (every figure, per step), log.txt (everything printed). Scratch files go to a temporary
# directory that is removed at the end. Exit status 0 only when every step passed.
#
# Never needs the network: pip runs with --no-index, Hugging Face offline, text caches synthetic
# (bench/synthetic_caches.py, encoder "synthetic-random"), so the MiniLM wheel need not travel. The GPU image
# lacks openai (prompts/llm_client.py imports it; no step here does). To carry it, fill .whl/ (ignored by git)
# from the repository root on a machine with a package index:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     openai==3.63.0 httpx2==2.17.0 httpcore2==2.17.0 truststore==0.10.5 jiter==0.19.0 pydantic==2.14.4 \
#     pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 sniffio==1.3.1
#
# and name .whl in the device call's carry; this script installs them into a scratch directory on PYTHONPATH.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DRY=0 ONLY="" BUDGET="" NPROC="" KEEP=0 PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --only) ONLY="${2:?--only needs step names}"; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
        --nproc) NPROC="${2:?--nproc needs a number}"; shift ;;
        --python) PY="${2:?--python needs an interpreter}"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
OUT="${OUT:-$REPO/bench-out/gpu-check}"
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/smie-gpu-check.XXXXXX")" || exit 2
mkdir -p "$WORK/fig"
: >"$WORK/steps.tsv"
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
rm -f "$OUT/summary.txt" "$OUT/figures.json"
: >"$OUT/log.txt"
exec > >(tee -a "$OUT/log.txt") 2>&1
TEE=$!

if [ "$DRY" = 1 ]; then
    MODE=dry-run DEV=cpu BACKEND=gloo NPROC="${NPROC:-2}" BUDGET="${BUDGET:-600}"
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
    MODE=gpu DEV=cuda BACKEND=nccl NPROC="${NPROC:-1}" BUDGET="${BUDGET:-360}"
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export REPO OUT WORK DRY DEV BACKEND NPROC PY
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export TOOLS="$REPO/bench/gpu_check_tools.py"

# ---- helpers (exported: every step runs in its own bash under timeout) -----------------------------------------
note() { printf '%s; ' "$*" >>"$WORK/note.$STEP"; echo "note: $*"; }
fig() { printf '%s\t%s\t%s\n' "$STEP" "$1" "$2" >>"$WORK/fig/kv.tsv"; }  # fig KEY JSON-VALUE
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
smie() { "$PY" -m smie "$@"; }
torchrun() { "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "$@"; }
export -f note fig now since smie torchrun

# NTU-shaped skeletons (smie's embedded synthetic actions, 16 classes, 50 frames, 25 joints, 2 bodies) and a
# backbone trained on their seen classes; shared by torchrun-pipeline and agree-backbone.
ntu_skeletons() {
    local d="$WORK/ntu"
    [ -f "$d/sk.h5" ] && return 0
    mkdir -p "$d"
    local per=40; [ "$DRY" = 1 ] && per=5
    smie synthetic --out "$d/syn.npz" --per-class "$per" --frames 50 --seed 0 &&
        smie prepare --format npz --input "$d/syn.npz" --out "$d/sk.h5" --frames 50
}
PRETRAIN_ARGS() {  # the pretrain-backbone options of both steps
    if [ "$DRY" = 1 ]; then echo "--epochs 1 --batch-size 16"; else echo "--epochs 10 --batch-size 16"; fi
}
EXTRACT_ARGS() {  # the extract-visual options of both steps (dry: one masked view, half the CPU time)
    if [ "$DRY" = 1 ]; then echo "--views 1 --batch-size 16"; else echo "--views 4 --batch-size 64"; fi
}
export -f ntu_skeletons PRETRAIN_ARGS EXTRACT_ARGS

# ---- steps ------------------------------------------------------------------------------------------------------
step_install() {
    local wheels=(.whl/*.whl) rc=0
    if [ -e "${wheels[0]}" ]; then
        if [ "$DRY" = 1 ]; then  # the wheels are the device's (cp312, manylinux): check they install there
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site-check" \
                --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
                --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 "${wheels[@]}" &&
                note "${#wheels[@]} wheels from .whl checked for Python 3.12 (not put on this Python's path)" ||
                { rc=1; note "the wheels in .whl do not install for Python 3.12"; }
        else
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "${wheels[@]}" &&
                note "${#wheels[@]} wheels from .whl on PYTHONPATH" || { rc=1; note "the wheels in .whl failed"; }
        fi
    else
        note "no .whl/ wheels (openai missing on a bare GPU image; no step needs it)"
    fi
    local dry=(); [ "$DRY" = 1 ] && dry=(--dry-run)
    if [ "$DRY" = 1 ] && ! "$PY" -c "import setuptools" 2>/dev/null; then
        note "no setuptools here: the offline build check was not run (the GPU image has setuptools)"
    else
        "$PY" -m pip install "${dry[@]}" --no-deps --no-build-isolation --no-index -e . ||
            { rc=1; note "pip install -e . failed"; }
    fi
    "$PY" -c "import smie, os; print('smie from', os.path.dirname(smie.__file__))" || rc=1
    return $rc
}

step_env() {
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    local req=(); [ "$DRY" = 0 ] && req=(--require-cuda)
    "$PY" "$TOOLS" env "${req[@]}" --json "$WORK/fig/env.json"
}

step_gpu_tests() {
    local files
    files=$(grep -l "pytest.mark.gpu" tests/test_*.py) || { note "no gpu-marked test file"; return 1; }
    "$PY" -m pytest -q -p no:cacheprovider -rs -m gpu $files 2>&1 | tee "$WORK/pytest.txt"
    local rc=${PIPESTATUS[0]} last
    last=$(grep -E "passed|skipped|failed|error|no tests ran" "$WORK/pytest.txt" | tail -1)
    note "$(echo "$last" | tr -d '=' | sed 's/^ *//; s/ *$//')"
    fig result "\"$(echo "$last" | tr -d '="')\""
    [ "$rc" = 0 ] || return 1
    if [ "$DRY" = 0 ] && { grep -q skipped <<<"$last" || ! grep -q passed <<<"$last"; }; then
        note "on a GPU every gpu test must run and pass"
        return 1
    fi
}

step_torchrun_pipeline() {
    ntu_skeletons || return 1
    local d="$WORK/ntu" t
    rm -f "$d/bb.pt" "$d/vis.h5"
    t=$(now)
    torchrun -m smie pretrain-backbone --skeletons "$d/sk.h5" --split random:4:seed=0 --out "$d/bb.pt" \
        $(PRETRAIN_ARGS) --val-fraction 0.2 --device "$DEV" --seed 0 || return 1
    fig pretrain_s "$(since "$t")"
    t=$(now)
    torchrun -m smie extract-visual --skeletons "$d/sk.h5" --backbone "$d/bb.pt" --out "$d/vis.h5" \
        --device "$DEV" $(EXTRACT_ARGS) --chunk-size 256 || return 1
    fig extract_s "$(since "$t")"
    fig nproc "$NPROC"
    "$PY" - "$d/bb.pt" "$d/vis.h5" "$d/sk.h5" <<'EOF' || return 1
import json, os, sys, torch
from smie.features.skeletons import read_skeleton_header
from smie.features.visual import read_visual_header
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
prov, vc, samples = ckpt["provenance"], read_visual_header(sys.argv[2]), len(read_skeleton_header(sys.argv[3]).labels)
world, nproc, dev = prov.get("world_size"), int(os.environ["NPROC"]), os.environ["DEV"]
backend = ("nccl" if dev == "cuda" else "gloo") if world > 1 else "none (world 1: no process group)"
facts = dict(world_size=world, ckpt_device=prov.get("device"), val_acc=ckpt["val_acc"], epochs=len(prov["history"]),
             backend=backend, samples=samples, cache_dim=vc.feature_dim, cache_views=vc.views)
print(json.dumps(facts))
with open(os.path.join(os.environ["WORK"], "fig", "kv.tsv"), "a") as fh:
    for k, v in facts.items():
        fh.write(f"torchrun-pipeline\t{k}\t{json.dumps(v)}\n")
bad = [f"world size {world} != {nproc}"] * (world != nproc)
bad += [f"trained on {prov.get('device')}, not {dev}"] * (not str(prov.get("device")).startswith(dev))
bad += [f"cache holds {vc.num_samples} rows of {samples}"] * (vc.num_samples != samples)
sys.exit("; ".join(bad) or None)
EOF
    note "world $NPROC, process group: $([ "$NPROC" -gt 1 ] && echo "$BACKEND" || echo none)"
}

step_ddp_smoke() {
    "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 "$TOOLS" ddp-smoke --backend "$BACKEND" \
        --json "$WORK/fig/ddp-smoke.json"
}

step_agree_backbone() {
    ntu_skeletons || return 1
    local d="$WORK/ntu" cand="$WORK/ntu/vis.h5"
    if [ ! -f "$d/bb.pt" ]; then
        note "no torchrun checkpoint: training one here"
        smie pretrain-backbone --skeletons "$d/sk.h5" --split random:4:seed=0 --out "$d/bb.pt" $(PRETRAIN_ARGS) \
            --val-fraction 0.2 --device "$DEV" --seed 0 || return 1
        rm -f "$cand"
    fi
    if [ ! -f "$cand" ]; then
        cand="$d/vis-$DEV.h5"
        smie extract-visual --skeletons "$d/sk.h5" --backbone "$d/bb.pt" --out "$cand" --device "$DEV" \
            $(EXTRACT_ARGS) --no-resume || return 1
    fi
    smie extract-visual --skeletons "$d/sk.h5" --backbone "$d/bb.pt" --out "$d/vis-cpu.h5" --device cpu \
        $(EXTRACT_ARGS) --no-resume || return 1
    "$PY" "$TOOLS" compare-features "$d/vis-cpu.h5" "$cand" --json "$WORK/fig/agree-backbone.json"
}

step_agree_stage2() {
    local d="$WORK/agree2" size=(--samples 2000 --classes 20 --dim 256 --text-dim 384)
    local fit=(--epochs 10 --warmup 2 --lr 1e-4 --seed 0)
    [ "$DRY" = 1 ] && size=(--samples 400 --classes 10 --unseen 3 --dim 32 --text-dim 16 --views 2) &&
        fit=(--epochs 4 --warmup 1 --lr 1e-3 --hidden 64,32 --batch-size 32 --seed 0)
    "$PY" bench/synthetic_caches.py --out "$d" "${size[@]}" || return 1
    smie fit-estimator --visual "$d/visual.h5" --text "$d/text.h5" --out "$d/cpu" "${fit[@]}" --device cpu ||
        return 1
    smie fit-estimator --visual "$d/visual.h5" --text "$d/text.h5" --out "$d/dev" "${fit[@]}" --device "$DEV" ||
        return 1
    "$PY" "$TOOLS" compare-fits "$d/cpu" "$d/dev" --json "$WORK/fig/agree-stage2.json"
}

step_backbone_throughput() {
    local opts=(); [ "$DRY" = 1 ] && opts=(--models stgcn:small --batch 2 --iters 1 --warmup 0)
    "$PY" bench/backbone_throughput.py --device "$DEV" --frames 50 "${opts[@]}" \
        --json "$WORK/fig/backbone-throughput.json"
}

step_extract_throughput() {
    local opts=(--n 8192); [ "$DRY" = 1 ] && opts=(--n 16 --batch-size 8 --chunk-size 16 --views 2)
    "$PY" bench/extract_throughput.py --device "$DEV" --frames 50 --bodies 2 "${opts[@]}" \
        --json "$WORK/fig/extract-throughput.json"
}

step_stage2_cost() {
    local opts=(--epochs 20); [ "$DRY" = 1 ] && opts=(--samples 32 --test 16 --epochs 1 --batch-size 16 --views 1)
    "$PY" bench/stage2_cost.py --device "$DEV" "${opts[@]}" --json "$WORK/fig/stage2-cost.json"
}

step_fit_ntu60() {
    local d="$WORK/ntu60" t size=(--samples 40000 --classes 60 --unseen 5 --dim 256 --text-dim 384 --views 4)
    local fit=(--epochs 100) unseen=5
    [ "$DRY" = 1 ] && unseen=3 &&
        size=(--samples 600 --classes 20 --unseen 3 --dim 32 --text-dim 16 --views 2 --latent 4 --noise 1
              --class-noise 0.3) && fit=(--epochs 10 --warmup 1 --lr 3e-3 --hidden 64,32 --batch-size 32)
    t=$(now)
    "$PY" bench/synthetic_caches.py --out "$d" "${size[@]}" || return 1
    fig caches_s "$(since "$t")"
    "$PY" "$TOOLS" fit --unseen "$unseen" --json "$WORK/fig/fit-ntu60.json" -- fit-estimator \
        --visual "$d/visual.h5" --text "$d/text.h5" --out "$d/run" "${fit[@]}" --device "$DEV" --seed 0
}
export -f step_install step_env step_gpu_tests step_torchrun_pipeline step_ddp_smoke step_agree_backbone \
    step_agree_stage2 step_backbone_throughput step_extract_throughput step_stage2_cost step_fit_ntu60

# ---- driver -----------------------------------------------------------------------------------------------------
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
T0=$(now)
echo "smie GPU check ($MODE): device $DEV, torchrun x$NPROC ($BACKEND), budget ${BUDGET}s, out $OUT"

run_step() {  # run_step NAME TIMEOUT_SECONDS
    local name=$1 limit=$2 fn="step_${1//-/_}" left elapsed t rc status note
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
    elapsed=$(since "$T0")
    left=$(awk -v b="$BUDGET" -v e="$elapsed" 'BEGIN { printf "%d", b - e }')
    if [ "$left" -lt 10 ]; then
        printf '%s\tSKIP\t0\t%s\n' "$name" "time budget of ${BUDGET}s spent" >>"$WORK/steps.tsv"
        echo "=== [$name] SKIP: time budget of ${BUDGET}s spent"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "=== [$name] start at $(printf '%.0f' "$elapsed") s (limit ${limit} s)"
    t=$(now)
    STEP=$name timeout -k 10 "$limit" bash -c "$fn"
    rc=$?
    note="$(cat "$WORK/note.$name" 2>/dev/null | sed 's/; $//')"
    case $rc in
        0) status=PASS ;;
        124|137) status=FAIL; note="timed out after ${limit} s${note:+; $note}" ;;
        *) status=FAIL; note="exit status $rc${note:+; $note}" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(since "$t")" "$note" >>"$WORK/steps.tsv"
    echo "=== [$name] $status in $(since "$t") s${note:+: $note}"
}

run_step install 120
if ! "$PY" -c "import smie" 2>/dev/null; then  # no editable install (old setuptools?): the checkout is the package
    mkdir -p "$WORK/pkg" && ln -sfn "$REPO" "$WORK/pkg/smie"
    export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
    echo "=== smie not importable after install: put on PYTHONPATH as $WORK/pkg/smie -> $REPO"
fi
run_step env 60
run_step gpu-tests 150
run_step torchrun-pipeline 150
run_step ddp-smoke 60
run_step agree-backbone 90
run_step agree-stage2 90
run_step backbone-throughput 90
run_step extract-throughput 120
run_step stage2-cost 90
run_step fit-ntu60 180

TOTAL=$(since "$T0")
echo "=== total ${TOTAL} s"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$PY" "$TOOLS" report "$WORK" "$OUT" --mode "$MODE" --total "$TOTAL" --started "$STARTED" --commit "$COMMIT"
RC=$?
if [ ! -s "$OUT/summary.txt" ]; then  # the report itself broke: the step table alone, still PASS/FAIL per step
    RC=1
    { echo "smie GPU check ($MODE), commit $COMMIT: the report failed; steps:"
      awk -F'\t' '{ printf "%-5s %-20s %7.1f s  %s\n", $2, $1, $3, $4 }' "$WORK/steps.tsv"
      echo "total $TOTAL s"; } | tee "$OUT/summary.txt"
fi
[ "$KEEP" = 1 ] && echo "scratch kept: $WORK"
exec >&- 2>&-
wait "$TEE"
exit "$RC"
