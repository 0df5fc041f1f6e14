"""fp32 GEMM on the GPU: rustkeras' kernel beside PyTorch CUDA's `torch.mm`.

GFLOP/s (2 n^3 per product) of an n x n x n float32 product with the data
resident on the GPU, timed over enough products to fill about `--seconds`
after a warm-up: rustkeras through `_core.bench_gpu_gemm(n, iters)`, PyTorch
with `torch.mm` on CUDA (TF32 off, PyTorch's default for matmul). Each
framework runs in its own subprocess, so that a driver crash or a missing GPU
costs only its row. Prints a Markdown section; with --out, appends it there.

Run:
    python bench/gpu/gemm.py [--sizes 1024,4096] [--seconds 1] [--out FILE]
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402  (bench/common.py)

FRAMEWORKS = ("rustkeras-gpu", "torch-cuda")
LABELS = {"rustkeras-gpu": "rustkeras (GPU)", "torch-cuda": "PyTorch (CUDA)"}
MIN_ITERS, MAX_ITERS = 3, 1000


def iterations(seconds_per_product: float, budget_s: float) -> int:
    return max(MIN_ITERS, min(MAX_ITERS, int(budget_s / max(seconds_per_product, 1e-9))))


def rustkeras_gflops(n: int, budget_s: float) -> float:
    from rustkeras import _core

    first = _core.bench_gpu_gemm(n, 1)  # compiles the pipeline, allocates, gives a first estimate
    return _core.bench_gpu_gemm(n, iterations(2 * n**3 / (first * 1e9), budget_s))


def torch_gflops(n: int, budget_s: float) -> float:
    import torch

    torch.manual_seed(0)
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    c = torch.empty(n, n, device="cuda")
    torch.mm(a, b, out=c)  # warm-up: cuBLAS handle and kernel choice
    torch.cuda.synchronize()
    start = time.perf_counter()
    torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    iters = iterations(time.perf_counter() - start, budget_s)
    start = time.perf_counter()
    for _ in range(iters):
        torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - start) / 1e9


def worker(framework: str, sizes, budget_s: float) -> None:
    try:
        if framework == "torch-cuda":
            import torch
        else:
            import rustkeras
            from rustkeras import _core
    except ImportError as err:
        common.report({"status": common.NOT_INSTALLED, "detail": str(err)})
        return
    missing = common.missing_device(framework)
    if missing:
        common.report({"status": missing})
        return
    if framework == "torch-cuda":
        run = torch_gflops
        version = f"torch {torch.__version__} on {torch.cuda.get_device_name()}"
    else:
        run = rustkeras_gflops
        version = f"rustkeras {getattr(rustkeras, '__version__', '?')} on {_core.gpu_status()[1]}"
    common.report({"status": "ok", "version": version, "gflops": {str(n): run(n, budget_s) for n in sizes}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--seconds", type=float, default=1.0, help="time to spend on each size, roughly")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per framework")
    parser.add_argument("--out", help="append the results to this Markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.worker:
        worker(args.worker, sizes, args.seconds)
        return
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")

    results = {}
    for fw in frameworks:
        print(f"GEMM: {fw}, n = {args.sizes}", file=sys.stderr, flush=True)
        results[fw] = common.run_worker(
            __file__, ["--worker", fw, "--sizes", args.sizes, "--seconds", str(args.seconds)],
            common.worker_env(os.cpu_count() or 1), args.timeout,
        )

    def gflops(fw: str, n: int):
        r = results.get(fw, {})
        return r["gflops"][str(n)] if r.get("status") == "ok" else None

    columns = ["n"] + [f"{LABELS[fw]} GFLOP/s" for fw in frameworks]
    if set(FRAMEWORKS) <= set(frameworks):
        columns.append("rustkeras/PyTorch")
    rows = []
    for n in sizes:
        row = [n] + [common.fmt(gflops(fw, n), 4) for fw in frameworks]
        if set(FRAMEWORKS) <= set(frameworks):
            mine, peer = gflops("rustkeras-gpu", n), gflops("torch-cuda", n)
            row.append(f"{mine / peer:.2f}" if mine and peer else "–")
        rows.append(row)
    lines = [f"## fp32 GEMM on the GPU, n x n x n, data resident (`{' '.join(['python', *sys.argv])}`)", ""]
    lines += common.markdown_table(columns, rows)
    lines.append("")
    lines += [f"- {LABELS[fw]}: {results[fw].get('version') or results[fw].get('status')}" for fw in frameworks]
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
