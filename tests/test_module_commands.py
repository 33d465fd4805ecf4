"""Every ``python -m latentlab.…`` command answers ``--help`` with its usage and writes nothing
(before, two of them took ``--help`` for the output folder and wrote files into ``./--help/``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = ["latentlab.report", "latentlab.recon.fixtures", "latentlab.h2.fixtures", "latentlab.runall",
            "latentlab.kernels", "latentlab.cli"]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_prints_usage_and_writes_nothing(module, tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert list(tmp_path.iterdir()) == [], f"{module} --help wrote {sorted(p.name for p in tmp_path.iterdir())}"
