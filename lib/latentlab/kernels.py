"""Execute notebooks with papermill over an encrypted kernel connection (``make notebooks``).

papermill's command line starts every kernel over plain TCP, and ipykernel then warns on stderr
("Kernel is running over TCP without encryption ...") on each run. papermill's Python API takes a
kernel manager class: this one asks jupyter_client to provision CurveZMQ keys (the python3
kernelspec declares support; pyzmq needs libsodium), so the traffic is encrypted and the warning
has no cause. Without CurveZMQ support it falls back to jupyter_client's default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import default


class EncryptedKernelManager(AsyncKernelManager):
    """A kernel manager that encrypts the kernel's sockets whenever pyzmq can."""

    @default("transport_encryption")
    def _encrypt_when_possible(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"


def execute(notebook: str | Path, output: str | Path, *, cwd: str | Path | None = None,
            parameters: dict | None = None, progress_bar: bool = True) -> None:
    """papermill ``notebook`` → ``output`` on the ``python3`` kernel, encrypted (see the module docstring)."""
    import papermill as pm

    pm.execute_notebook(str(notebook), str(output), parameters=parameters or {}, kernel_name="python3",
                        cwd=None if cwd is None else str(cwd), progress_bar=progress_bar,
                        kernel_manager_class=EncryptedKernelManager)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlab.kernels",
                                     description="re-execute notebooks in place (papermill, encrypted kernel)")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--cwd", type=Path, default=None, help="the kernel's working directory")
    args = parser.parse_args(argv)
    for notebook in args.notebooks:
        print(f"executing {notebook} in place", flush=True)
        execute(notebook, notebook, cwd=args.cwd, progress_bar=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
