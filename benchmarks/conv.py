"""Benchmark: antlers.conv (NumPy) against torch.nn.functional.conv2d, in the same process.

    .venv/bin/python benchmarks/conv.py                # 1 and 2 threads, records docs/benchmarks.md
    .venv/bin/python benchmarks/conv.py --no-record --threads 1

Every thread count runs in a child process of its own, started with ``OPENBLAS_NUM_THREADS`` /
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set before NumPy is imported (and threadpoolctl limits
as well, when it is installed) and ``torch.set_num_threads``. The children run without
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``: some machines set these, and they make NumPy's
OpenBLAS pick slower kernels; the parent's environment, and the tests, are left alone.

Times are medians of ``--repeats`` runs in milliseconds, float32. "bwd" is the time for all of
``(grad_x, grad_w, grad_b)``: ``conv2d_backward`` against ``torch.autograd.grad`` on a retained
graph (backward alone, no forward). Targets, at the batch shape with one thread: forward within
1.5x of torch, backward within 2.5x.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import REPO, cpu_model, record_section

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TARGETS = {"fwd": 1.5, "bwd": 2.5}  # ours / torch, batch shape, one thread

# name -> (x shape, w shape, padding, with bias); the 2-D shapes are the lecture's single channel.
CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, bool]] = {
    "lecture 5x6, 3x3 kernel": ((5, 6), (3, 3), 0, False),
    "lecture 3x50x70 -> 10 ch, 3x3": ((1, 3, 50, 70), (10, 3, 3, 3), 0, True),
    "batch 64x32x28x28 -> 64 ch, 3x3, pad 1": ((64, 32, 28, 28), (64, 32, 3, 3), 1, True),
    "batch 64x32x28x28 -> 64 ch, 3x3, pad 0": ((64, 32, 28, 28), (64, 32, 3, 3), 0, True),
}
NAIVE_CASES = ("lecture 5x6, 3x3 kernel", "lecture 3x50x70 -> 10 ch, 3x3")


def median_ms(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median wall times in ms of ``ours()`` and of ``theirs()``, each after one warm-up call.

    Each function runs its repeats in a row: alternating them makes the spinning worker threads
    of NumPy's BLAS and of torch fight over the cores, which slows both down many times.
    """
    medians = []
    for fn in (ours, theirs):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(1e3 * statistics.median(times))
    return medians[0], medians[1]


# ---------------------------------------------------------------------------- child process


def run_case(name: str, repeats: int, naive: bool) -> dict:
    """Time one case: ours against torch, forward and (unless ``naive``) backward."""
    import numpy as np
    import torch
    import torch.nn.functional as nnf

    from antlers.conv import conv2d, conv2d_backward, conv2d_naive

    x_shape, w_shape, padding, with_bias = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32) if with_bias else None
    # torch takes the 2-D lecture case as (1, 1, H, W) and (1, 1, KH, KW).
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    if len(x_shape) == 2:
        xt, wt = xt[None, None], wt[None, None]
    bt = None if b is None else torch.from_numpy(b)

    ours = conv2d_naive if naive else conv2d
    row = {"case": f"naive loops: {name}" if naive else name}
    row["ours_fwd"], row["torch_fwd"] = median_ms(
        lambda: ours(x, w, b, padding=padding),
        lambda: nnf.conv2d(xt, wt, bt, padding=padding),
        repeats,
    )
    if naive:
        return row
    params = [t.clone().requires_grad_() for t in (xt, wt) + (() if bt is None else (bt,))]
    out = nnf.conv2d(params[0], params[1], params[2] if bt is not None else None, padding=padding)
    grad_t = torch.randn_like(out)
    grad = grad_t.numpy().reshape(conv2d(x, w, b, padding=padding).shape)
    row["ours_bwd"], row["torch_bwd"] = median_ms(
        lambda: conv2d_backward(grad, x, w, padding=padding),
        lambda: torch.autograd.grad(out, params, grad_t, retain_graph=True),
        repeats,
    )
    return row


def blas_description() -> str:
    """The BLAS NumPy uses (threadpoolctl if installed, else NumPy's build configuration)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np

        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')} (np.show_config)"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(
        f"{i['internal_api']} {i['version']}, kernel {i.get('architecture', '?')}, "
        f"{i['num_threads']} threads"
        for i in infos
    )


def child(threads: int, repeats: int) -> None:
    """Run every case with ``threads`` threads; print one JSON object on stdout."""
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables set by the parent limit the threads
        limits = None
    else:
        limits = threadpool_limits(threads)
    load = os.getloadavg()[0]
    rows = [run_case(name, repeats, naive=False) for name in CASES]
    rows += [run_case(name, max(1, repeats // 3), naive=True) for name in NAIVE_CASES]
    result = {"threads": threads, "blas": blas_description(), "rows": rows, "load": load}
    if limits is not None:
        limits.restore_original_limits()
    print(json.dumps(result))


# ---------------------------------------------------------------------------- parent process


def child_environment(threads: int) -> dict[str, str]:
    """This environment without the OpenBLAS overrides, with every thread count set."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def run_child(threads: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", str(threads), "--repeats", str(repeats)]
    done = subprocess.run(
        command, env=child_environment(threads), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child ({threads} threads) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio(row: dict, kind: str) -> float | None:
    if f"ours_{kind}" not in row:
        return None
    return row[f"ours_{kind}"] / row[f"torch_{kind}"]


def table(results: list[dict]) -> list[str]:
    """A Markdown table: one row per case and thread count."""
    lines = [
        "| case | threads | ours fwd ms | torch fwd ms | fwd ratio "
        "| ours bwd ms | torch bwd ms | bwd ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for row in result["rows"]:
            cells = [row["case"], str(result["threads"])]
            for kind in ("fwd", "bwd"):
                r = ratio(row, kind)
                if r is None:
                    cells += ["-", "-", "-"]
                else:
                    cells += [f"{row[f'ours_{kind}']:.3f}", f"{row[f'torch_{kind}']:.3f}"]
                    cells.append(f"{r:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def target_lines(results: list[dict]) -> list[str]:
    """Whether the targets hold at the batch shape with one thread."""
    lines = []
    for result in results:
        if result["threads"] != 1:
            continue
        for row in result["rows"]:
            if not row["case"].startswith("batch"):
                continue
            for kind, limit in TARGETS.items():
                r = ratio(row, kind)
                verdict = "met" if r is not None and r <= limit else "MISSED"
                lines.append(f"- {row['case']}, {kind}: {r:.2f}x (target <= {limit}x): {verdict}")
    return lines


def report(results: list[dict]) -> list[str]:
    """The '## conv' section of docs/benchmarks.md."""
    import numpy as np
    import torch

    removed = [name for name in BLAS_OVERRIDES if name in os.environ]
    loads = ", ".join(f"{r['load']:.2f}" for r in results)
    return [
        "## conv",
        "",
        "`benchmarks/conv.py`: `antlers.conv.conv2d` / `conv2d_backward` (NumPy, im2col + GEMM)",
        "and `conv2d_naive` (the loops of the definition) against `torch.nn.functional.conv2d`",
        "and its autograd backward, float32, median of repeats, in the same process.",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores ({platform.system()})",
        f"- threads: {', '.join(str(r['threads']) for r in results)} (NumPy's BLAS and torch)",
        f"- numpy {np.__version__}, torch {torch.__version__}, Python {platform.python_version()}",
        f"- BLAS: {results[0]['blas']}",
        f"- OpenBLAS overrides removed for the run: {', '.join(removed) or 'none were set'}",
        f"- date: {datetime.date.today().isoformat()}",
        f"- load average (1 min) before each thread count: {loads} (other work skews the times)",
        "",
        *table(results),
        "",
        "On 2 shared cores the 2-thread rows are the noisiest: any other work (or the other",
        "library's worker threads still spinning) takes a core that a parallel call waits for.",
        "",
        "Targets (batch shape, one thread):",
        "",
        *target_lines(results),
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.repeats)
        return
    results = []
    for threads in args.threads:
        print(f"running with {threads} thread(s)...", file=sys.stderr, flush=True)
        results.append(run_child(threads, args.repeats))
    section = report(results)
    print("\n".join(section))
    if not args.no_record:
        record_section(section, args.output)
        print(f"recorded in {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
