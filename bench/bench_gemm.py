"""fp32 matrix multiply throughput: rustkeras.backend.dot vs numpy vs torch, and the engine's
product against the machine's ceiling in every form a Dense layer's step runs.mm.

Square n x n float32 products, numpy arrays in and out for rustkeras and
numpy; torch.mm on tensors sharing the same memory. Each framework runs in
its own subprocess pinned to the same CPUs. The figure is the best of
several timed repeats after a warm-up call, in GFLOP/s (2 n^3 / seconds).

numpy's figure depends on its BLAS: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE,
when set, are recorded in the output; unset both for numpy's own best.

Run:
    python bench/bench_gemm.py [--sizes 512,1024,2048] [--threads 2] [--rounds 1]
                               [--out bench/RESULTS.md]
"""

import argparse
import time

import numpy as np

import common

FRAMEWORKS = ("rustkeras", "numpy", "torch")
LABELS = {"rustkeras": "rustkeras.backend.dot", "numpy": "numpy a @ b", "torch": "torch.mm"}
DISTS = {"rustkeras": ("rustkeras",), "numpy": (), "torch": ("torch",)}


# The engine's product in the three forms a Dense layer's training step runs, at the MLP's
# shapes (784-512 and 512-512 weights; batch 128 and 32): (label, form, m, k, n) with the
# output m x n summed over k. Timed by the engine itself (`_core.cpu_gemm_gflops`: the op's
# kernel on a worker of the pool, as in a step), so no array conversion is counted.
FORM_SHAPES = [(f"square {n}x{n}x{n}", "a·b", n, n, n) for n in (512, 1024)] + [
    (f"{label} {m}x{k}x{n}", form, m, k, n)
    for batch in (128, 32)
    for label, form, m, k, n in (
        ("x·W (forward)", "a·b", batch, 784, 512),
        ("dy·Wᵀ (input gradient)", "a·bᵀ", batch, 512, 784),
        ("xᵀ·dy (weight gradient)", "aᵀ·b", 784, batch, 512),
        ("x·W (forward)", "a·b", batch, 512, 512),
        ("dy·Wᵀ (input gradient)", "a·bᵀ", batch, 512, 512),
        ("xᵀ·dy (weight gradient)", "aᵀ·b", 512, batch, 512),
    )
]
# The measured 2-core fp32 ceiling of this machine kind (shared/PERF_ANCHORS.md: ~205 GFLOP/s
# on two Zen 4 cores); --ceiling overrides it.
CEILING_GFLOPS = 205.0


def best_seconds(fn, min_repeats: int, min_total_s: float) -> float:
    fn()  # warm-up: thread pools, packing buffers, first-touch pages
    times = []
    while len(times) < min_repeats or sum(times) < min_total_s:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def worker(framework: str, sizes, threads: int, min_total_s: float) -> None:
    common.pin_to_threads(threads)
    try:
        if framework == "torch":
            import torch

            torch.set_num_threads(threads)
        elif framework == "rustkeras":
            from rustkeras import backend
    except ImportError as err:
        common.report({"status": common.NOT_INSTALLED, "detail": str(err)})
        return

    rng = np.random.default_rng(0)
    gflops, max_err = {}, {}
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        if framework == "numpy":
            def product():
                return a @ b
        elif framework == "torch":
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)

            def product():
                return torch.mm(ta, tb).numpy()
        else:
            def product():
                return backend.dot(a, b)
        result = np.asarray(product())
        reference = a.astype(np.float64) @ b.astype(np.float64)
        max_err[n] = float(np.max(np.abs(result - reference)) / np.sqrt(n))
        seconds = best_seconds(product, 3, min_total_s)
        gflops[n] = 2 * n**3 / seconds / 1e9
    forms = {}
    if framework == "rustkeras":
        from rustkeras import _core

        for label, form, m, k, n in FORM_SHAPES:
            forms[label] = _core.cpu_gemm_gflops(form, m, k, n, min_total_s)
    if framework == "numpy":
        version = f"numpy {np.__version__}"
    elif framework == "torch":
        version = torch.__version__
    else:
        import rustkeras

        version = getattr(rustkeras, "__version__", common.version("rustkeras"))
    common.report({"status": "ok", "gflops": gflops, "max_err": max_err, "version": version,
                   "forms": forms})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed repeats per size")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times, interleaved; keep the best")
    parser.add_argument("--ceiling", type=float, default=CEILING_GFLOPS,
                        help="the machine's measured 2-core GFLOP/s, for the percentages")
    parser.add_argument("--out", help="append the results to this Markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    if args.worker:
        worker(args.worker, sizes, args.threads, args.min_time)
        return
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")

    results = {}
    for _ in range(args.rounds):
        for fw in frameworks:
            result = common.run_worker(
                __file__,
                ["--worker", fw, "--sizes", args.sizes, "--threads", str(args.threads),
                 "--min-time", str(args.min_time)],
                common.worker_env(args.threads),
                timeout_s=600,
            )
            best = results.get(fw)
            if best is None or best.get("status") != "ok":
                results[fw] = result
            elif result.get("status") == "ok":
                for n, g in result["gflops"].items():
                    best["gflops"][n] = max(best["gflops"][n], g)
                for label, g in result.get("forms", {}).items():
                    best["forms"][label] = max(best["forms"][label], g)

    mine = results.get("rustkeras", {})
    rows = []
    for fw in frameworks:
        r = results[fw]
        if r.get("status") != "ok":
            rows.append([LABELS[fw], r.get("status", "?")] + ["–"] * len(sizes) + ["–"])
            continue
        version = r["version"]
        cells = []
        for n in sizes:
            g = r["gflops"][str(n)]
            cell = f"{g:.1f}"
            if fw != "rustkeras" and mine.get("status") == "ok":
                cell += f" ({mine['gflops'][str(n)] / g:.2f}x)"
            cells.append(cell)
        worst = max(r["max_err"].values())
        rows.append([LABELS[fw], version] + cells + [f"{worst:.1e}"])
    columns = ["implementation", "version"] + [f"n={n} GFLOP/s" for n in sizes] + ["max abs err / sqrt(n)"]
    lines = common.header("fp32 GEMM, square n x n", args.threads,
                          [d for fw in frameworks for d in DISTS[fw]])
    lines += common.markdown_table(columns, rows)
    lines += ["", f"Best of {args.rounds} round(s). In parentheses: rustkeras' GFLOP/s over the "
              "peer's (above 1: rustkeras is faster)."]
    if mine.get("status") == "ok":
        ceiling = args.ceiling
        square = [[f"`backend.dot`, n={n}", "a·b", f"{mine['gflops'][str(n)]:.1f}",
                   f"{100 * mine['gflops'][str(n)] / ceiling:.0f}%"] for n in sizes]
        forms = [["engine, " + label.rsplit(" ", 1)[1] + " " + label.rsplit(" ", 1)[0], form, f"{g:.1f}",
                  f"{100 * g / ceiling:.0f}%"]
                 for (label, form, *_), g in zip(FORM_SHAPES, mine["forms"].values())]
        lines += ["", f"rustkeras against the machine's 2-core ceiling ({ceiling:.0f} GFLOP/s): the Python "
                  "calls above (`backend.dot`, with its array conversion and output allocation), and the "
                  "engine's product itself, square and in each form a Dense layer's step runs at the MLP's "
                  "shapes (m x k x n: output m x n summed over k):", ""]
        lines += common.markdown_table(["shape", "form", "GFLOP/s", "of ceiling"], square + forms)
    common.emit(lines, args.out)


if __name__ == "__main__":
    main()
