"""A sweep on a real multi-process cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, started separately as on real machines, driven by `latentlab sweep --scheduler tcp://…`.
One worker is SIGKILLed mid-sweep; every point must still end done or failed (with its error) and
the points that finished must be kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

NOTEBOOK = Path(__file__).parent / "fixtures" / "sweep_slow_probe.ipynb"
BIN = Path(sys.executable).parent


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A cluster process in its own session (so a kill reaches only it), output to ``log``."""
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def worker_count(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return len(client.scheduler_info()["workers"])


@pytest.fixture()
def cluster(tmp_path):
    """Scheduler + two single-threaded workers without nannies (a killed worker stays dead)."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file)], tmp_path / "scheduler.log")]
    wait_for(scheduler_file.exists, 60, "the scheduler file")
    address = json.loads(scheduler_file.read_text())["address"]
    assert address.startswith("tcp://127.0.0.1:")
    for name in ("w1", "w2"):
        procs.append(start([str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
                            "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"], tmp_path / f"{name}.log"))
    wait_for(lambda: worker_count(address) == 2, 90, "two workers to register")
    yield address, procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sweep_on_separate_processes_survives_a_killed_worker(cluster, tmp_path):
    address, procs = cluster
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: {preset: quick, sleep_s: 4}\ngrid:\n  x: [1, 2, 3]\n  seed: [0, 1]\n")
    out = tmp_path / "sweep"
    sweep = subprocess.Popen([str(BIN / "latentlab"), "sweep", str(NOTEBOOK), "--grid", str(grid), "--out", str(out),
                              "--scheduler", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(out.glob("*/done.json")), 240, "the first finished point")
    worker = procs[1]
    os.killpg(worker.pid, signal.SIGKILL)  # mid-sweep: the other points are still queued or running
    stdout, stderr = sweep.communicate(timeout=600)

    assert worker.wait(timeout=10) == -signal.SIGKILL
    status = pd.read_csv(out / "status.csv")
    assert len(status) == 6
    assert set(status["state"]) <= {"done", "failed"}, status  # nothing left missing
    failed = status[status["state"] == "failed"]
    assert all(isinstance(e, str) and e for e in failed["error"])  # a failed point says why
    done = status[status["state"] == "done"]
    assert len(done) >= 1
    for point in done["point"]:
        assert (out / point / "done.json").exists() and (out / point / "metrics.json").exists()
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["point"]) == sorted(done["point"])  # every finished point collected, and only those
    assert sweep.returncode == (0 if failed.empty else 1), stderr
    assert f"{len(done)}/6 points done, {len(failed)} failed, 0 missing" in stdout
