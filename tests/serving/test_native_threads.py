"""Serving workers cap native thread pools (BLAS/OpenMP) so that workers do not oversubscribe the cores."""

from __future__ import annotations

import subprocess
import sys


def test_limit_native_threads_caps_every_pool_in_the_process() -> None:
    # a fresh interpreter: the cap is process-wide and must not leak into this test process
    code = (
        "import numpy, lightgbm\n"
        "from threadpoolctl import threadpool_info\n"
        "from shopkeep.serving.asgi import limit_native_threads\n"
        "limit_native_threads(1)\n"
        "pools = threadpool_info()\n"
        "assert pools, 'no native thread pool found'\n"
        "print(sorted({p['num_threads'] for p in pools}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[1]", out.stdout + out.stderr
