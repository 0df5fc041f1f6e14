#!/usr/bin/env bash
# rustkeras on the GPU, end to end: wheel, parity tests, GEMM, MLP, CNN and LSTM training; one
# Markdown report.
#
#   bench/gpu/run.sh                  # build the wheel here, then test and measure
#   QUICK=1 bench/gpu/run.sh          # small sizes (the default on a software GPU such as lavapipe)
#   RUSTKERAS_WHEEL=dist/rustkeras-0.1.0-cp39-abi3-manylinux_2_34_x86_64.whl bench/gpu/run.sh
#                                     # install a prebuilt wheel (a machine without Rust)
#
# Environment (all optional):
#   RUSTKERAS_WHEEL  wheel to install instead of building one with maturin
#   VENV             the virtual environment to create or reuse (default .venv-gpu; it sees the
#                    system's packages, so a preinstalled torch, numpy or pytest is used as is)
#   PYTHON           the Python that creates it (default python3)
#   QUICK            1: small sizes, 0: full sizes (default 1 when the best GPU adapter is a CPU
#                    (lavapipe, llvmpipe) or there is none, else 0)
#   GEMM_SIZES       GEMM sizes n (default 1024,4096; 256 when QUICK=1)
#   GEMM_SECONDS     time per GEMM size and framework, roughly (default 1)
#   MLP_FRAMEWORKS   bench_mlp.py --frameworks (default rustkeras,rustkeras-gpu,torch,torch-cuda)
#   MLP_ARGS         bench_mlp.py's sizes (default "--epochs 3 --batch-sizes 128,32";
#                    QUICK=1: "--epochs 2 --batch-sizes 128 --subset 6000")
#   CNN_FRAMEWORKS   bench_cnn.py --frameworks (default as MLP_FRAMEWORKS)
#   CNN_ARGS         bench_cnn.py's sizes (default: none, the script's own, 3 x 60 batches of 128;
#                    QUICK=1: "--steps 3 --epochs 2 --test-samples 1000")
#   LSTM_FRAMEWORKS  bench_lstm.py --frameworks (default as MLP_FRAMEWORKS)
#   LSTM_ARGS        bench_lstm.py's sizes (default: none, the script's own, 4 epochs of 10,000 and
#                    5,000 samples; QUICK=1: "--epochs 2 --samples 640 --test-samples 200");
#                    set empty, CNN_ARGS and LSTM_ARGS run the defaults even with QUICK=1
#   THREADS          CPUs each MLP, CNN and LSTM worker gets (default: all of them)
#   SKIP_TESTS, SKIP_GEMM, SKIP_MLP, SKIP_CNN, SKIP_LSTM   1 skips that part
#   OUT              a folder: the report goes to $OUT/gpu_results.md, logs beside it
#   RESULTS          the report's path (default bench/gpu/RESULTS-<date>.md, or as OUT says)
#
# Exits non-zero when the parity tests fail (after writing the report).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$(pwd)"

VENV="${VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    RESULTS="${RESULTS:-$OUT/gpu_results.md}"
    LOGS="$OUT"
else
    RESULTS="${RESULTS:-bench/gpu/RESULTS-$(date -u +%Y-%m-%d).md}"
    LOGS="$(mktemp -d)"
fi
step_times=()
timed() {  # timed NAME: appends NAME's wall time (since the last mark) to step_times
    step_times+=("$1 $((SECONDS - mark)) s")
    mark=$SECONDS
}
mark=$SECONDS

# ---- (a) the environment and the wheel ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    # --system-site-packages: a machine without a network still has its numpy, pytest and torch.
    "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null \
        || "$PYTHON" -m venv --system-site-packages --without-pip "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
has() { python -c "import $1" 2>/dev/null; }
pip_install() { python -m pip install -q --disable-pip-version-check "$@"; }

if [ -n "${RUSTKERAS_WHEEL:-}" ]; then
    WHEEL="$RUSTKERAS_WHEEL"
    wheel_origin="prebuilt"
else
    # The maturin command itself (a system package's Python module alone cannot build).
    command -v maturin >/dev/null 2>&1 || pip_install --ignore-installed "maturin>=1.5,<2"
    maturin build --release -o dist
    WHEEL="$(ls -t dist/rustkeras-*.whl | head -n 1)"
    wheel_origin="built here"
fi
[ -f "$WHEEL" ] || { echo "error: no wheel at $WHEEL" >&2; exit 2; }

# ---- (b) rustkeras, numpy, pytest (torch only where already installed) ------------------
has numpy || pip_install numpy
has pytest || pip_install pytest
pip_install --no-deps --no-index --force-reinstall "$WHEEL"
timed "setup"

adapter_type="$(python -c 'from rustkeras import backend as K; d = K.devices(); print(d[0]["type"] if d else "none")')"
case "$adapter_type" in
    Cpu | none) QUICK="${QUICK:-1}" ;;
    *) QUICK="${QUICK:-0}" ;;
esac
if [ "$QUICK" = 1 ]; then
    GEMM_SIZES="${GEMM_SIZES:-256}"
    MLP_ARGS="${MLP_ARGS:---epochs 2 --batch-sizes 128 --subset 6000}"
    CNN_ARGS="${CNN_ARGS---steps 3 --epochs 2 --test-samples 1000}"
    LSTM_ARGS="${LSTM_ARGS---epochs 2 --samples 640 --test-samples 200}"
else
    GEMM_SIZES="${GEMM_SIZES:-1024,4096}"
    MLP_ARGS="${MLP_ARGS:---epochs 3 --batch-sizes 128,32}"
    CNN_ARGS="${CNN_ARGS-}"
    LSTM_ARGS="${LSTM_ARGS-}"
fi
MLP_FRAMEWORKS="${MLP_FRAMEWORKS:-rustkeras,rustkeras-gpu,torch,torch-cuda}"
CNN_FRAMEWORKS="${CNN_FRAMEWORKS:-$MLP_FRAMEWORKS}"
LSTM_FRAMEWORKS="${LSTM_FRAMEWORKS:-$MLP_FRAMEWORKS}"
THREADS="${THREADS:-$(nproc)}"

report="$(mktemp)"
{
    echo "# rustkeras on the GPU ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- command: \`QUICK=$QUICK GEMM_SIZES=$GEMM_SIZES MLP_ARGS=\"$MLP_ARGS\" CNN_ARGS=\"$CNN_ARGS\"" \
        "LSTM_ARGS=\"$LSTM_ARGS\" bench/gpu/run.sh\`"
    if commit="$(git rev-parse --short HEAD 2>/dev/null)"; then
        git diff --quiet HEAD -- || commit="$commit with uncommitted changes"
    else
        commit="unknown (not a git checkout)"
    fi
    echo "- commit: $commit"
    echo "- wheel: $(basename "$WHEEL") ($wheel_origin)"
    python - <<'PY'
import os
import platform

import rustkeras
from rustkeras import _core
from rustkeras import backend as K

adapters = ", ".join(f"{d['name']} ({d['type']}, {d['api']})" for d in K.devices()) or "none"
available, detail = _core.gpu_status()
print(f"- GPU adapters, best first: {adapters}")
print(f"- GPU context: {detail}" if available else f"- GPU context: none ({detail})")
try:
    import torch

    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"- torch {torch.__version__}: {cuda}")
except ImportError:
    print("- torch: not installed")
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
           platform.processor())
print(f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}; rustkeras {rustkeras.__version__}")
PY
    echo
} >"$report"

# ---- (c) GPU-vs-CPU parity tests -------------------------------------------------------
tests_failed=0
if [ "${SKIP_TESTS:-0}" != 1 ]; then
    echo "== parity tests" >&2
    {
        echo "## Parity tests: \`RUSTKERAS_BACKEND=gpu python -m pytest -q tests/test_gpu.py tests/test_gpu_layers.py\`"
        echo
        if [ ! -f tests/test_gpu.py ]; then
            echo "tests/test_gpu.py is missing."
        elif RUSTKERAS_BACKEND=gpu python -m pytest -q tests/test_gpu.py tests/test_gpu_layers.py >"$LOGS/gpu_pytest.log" 2>&1; then
            echo "$(tail -n 1 "$LOGS/gpu_pytest.log")"
        else
            tests_failed=1
            echo "FAILED: $(tail -n 1 "$LOGS/gpu_pytest.log")"
            echo
            echo '```'
            grep -E '^(FAILED|ERROR)' "$LOGS/gpu_pytest.log" | head -n 30 || true
            echo '```'
        fi
        echo
    } >>"$report"
    tail -n 30 "$LOGS/gpu_pytest.log" >&2 2>/dev/null || true
    timed "parity tests"
fi

# ---- (d) GEMM --------------------------------------------------------------------------
if [ "${SKIP_GEMM:-0}" != 1 ]; then
    echo "== GEMM at n = $GEMM_SIZES" >&2
    if ! python bench/gpu/gemm.py --sizes "$GEMM_SIZES" --seconds "${GEMM_SECONDS:-1}" --out "$report" \
        >/dev/null 2>"$LOGS/gpu_gemm.log"; then
        printf '## fp32 GEMM on the GPU\n\nfailed: %s\n\n' "$(tail -n 1 "$LOGS/gpu_gemm.log")" >>"$report"
    fi
    timed "GEMM"
fi

# ---- (e) the MLP epoch -----------------------------------------------------------------
if [ "${SKIP_MLP:-0}" != 1 ]; then
    echo "== MLP: $MLP_FRAMEWORKS, $MLP_ARGS" >&2
    # shellcheck disable=SC2086  (MLP_ARGS is a list of flags)
    if ! python bench/bench_mlp.py --frameworks "$MLP_FRAMEWORKS" --threads "$THREADS" $MLP_ARGS \
        --out "$report" >/dev/null 2>"$LOGS/gpu_mlp.log"; then
        printf '## MLP on Fashion-MNIST\n\nfailed: %s\n\n' "$(tail -n 1 "$LOGS/gpu_mlp.log")" >>"$report"
    fi
    timed "MLP"
fi

# ---- (f) the CNN (Keras' mnist_cnn) ------------------------------------------------------
if [ "${SKIP_CNN:-0}" != 1 ]; then
    echo "== CNN: $CNN_FRAMEWORKS, ${CNN_ARGS:-default sizes}" >&2
    # shellcheck disable=SC2086  (CNN_ARGS is a list of flags)
    if ! python bench/bench_cnn.py --frameworks "$CNN_FRAMEWORKS" --threads "$THREADS" $CNN_ARGS \
        --out "$report" >/dev/null 2>"$LOGS/gpu_cnn.log"; then
        printf '## CNN on Fashion-MNIST\n\nfailed: %s\n\n' "$(tail -n 1 "$LOGS/gpu_cnn.log")" >>"$report"
    fi
    timed "CNN"
fi

# ---- (g) the recurrent models (stacked LSTM, Embedding + LSTM) ----------------------------
if [ "${SKIP_LSTM:-0}" != 1 ]; then
    echo "== LSTM: $LSTM_FRAMEWORKS, ${LSTM_ARGS:-default sizes}" >&2
    # shellcheck disable=SC2086  (LSTM_ARGS is a list of flags)
    if ! python bench/bench_lstm.py --frameworks "$LSTM_FRAMEWORKS" --threads "$THREADS" $LSTM_ARGS \
        --out "$report" >/dev/null 2>"$LOGS/gpu_lstm.log"; then
        printf '## Recurrent models\n\nfailed: %s\n\n' "$(tail -n 1 "$LOGS/gpu_lstm.log")" >>"$report"
    fi
    timed "LSTM"
fi

# ---- (h) the report --------------------------------------------------------------------
echo "Wall time per part: $(IFS=';'; echo "${step_times[*]}" | sed 's/;/, /g')." >>"$report"
mkdir -p "$(dirname "$RESULTS")"
# The parts were appended to a scratch file; the commands they quote name the report instead.
sed "s#$report#$(basename "$RESULTS")#g" "$report" >"$RESULTS"
rm -f "$report"
cat "$RESULTS"
echo "(written to $RESULTS; logs in $LOGS)" >&2
exit "$tests_failed"
