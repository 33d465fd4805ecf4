"""Command line: ``latentlab sweep NOTEBOOK --grid params/<grid>.yaml`` and ``latentlab lab`` (``make lab``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from latentlab import io


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentlab", description="latentlab workbook tools")
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="run a notebook over a parameter grid on Dask")
    sweep.add_argument("notebook", help="the study notebook, e.g. notebooks/03_recon.ipynb")
    sweep.add_argument("--grid", required=True, help="grid YAML, e.g. params/recon.yaml")
    sweep.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of an existing Dask cluster")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    sweep.add_argument("--threads", type=int, default=1, help="BLAS/torch threads per grid point")
    sweep.add_argument("--out", default=None, help="sweep directory (default runs/sweeps/<grid name>)")
    lab = commands.add_parser("lab", help="JupyterLab on 127.0.0.1, always behind a token")
    lab.add_argument("--root", default=".", help="the directory JupyterLab serves (default: here)")
    lab.add_argument("--port", type=int, default=8888)
    args = parser.parse_args(argv)
    if args.command == "lab":
        return run_lab(args.root, args.port)

    from latentlab.sweep import grid as sweep_grid
    from latentlab.sweep import results as sweeps
    from latentlab.sweep import run as sweep_run

    try:
        status = sweep_run.run_sweep(args.notebook, args.grid, out_dir=args.out, scheduler=args.scheduler,
                                  workers=args.workers, threads_per_worker=args.threads)
    except sweep_grid.GridError as exc:
        print(f"latentlab sweep: {exc}", file=sys.stderr)
        return 2
    out = status.dir.map(lambda d: d.rsplit("/", 1)[0]).iloc[0]
    summary_error = None
    try:
        table = sweeps.collect(out)
    except (sweeps.ResultsError, sweep_grid.GridError) as exc:  # results.csv is written before the summary
        summary_error = exc
        try:
            table = sweeps.load_results(out)
        except sweeps.ResultsError:
            table = pd.DataFrame()
    if len(table) == 0 and summary_error is None:
        summary_error = "no grid point finished"
    unreadable = table.attrs.get("unreadable", {})
    for point, error in unreadable.items():  # done.json there but a result file does not read back
        status.loc[status.point == point, ["state", "ok", "error"]] = ["failed", False, error]
    if unreadable:
        io.write_csv(Path(out) / "status.csv", status)
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(status[["point", "state", "skipped", "seconds", "error"]].to_string(index=False))
        counts = status.state.value_counts()
        print(f"\n{counts.get('done', 0)}/{len(status)} points done, {counts.get('failed', 0)} failed, "
              f"{counts.get('missing', 0)} missing; table: {out}/results.csv ({len(table)} rows)")
        if len(table) and summary_error is None:
            summary = pd.read_csv(f"{out}/summary.csv")
            print(f"\nsummary over seeds ({out}/summary.csv, chart summary.png/.html):")
            print(sweeps.format_summary(summary).to_string(index=False))
    failed = status[status.state != "done"]
    for row in failed.itertuples():
        print(f"{row.state.upper()} {row.point}: {row.error}", file=sys.stderr)
    if summary_error is not None:
        print(f"latentlab sweep: no summary written: {summary_error}", file=sys.stderr)
        return 2
    return 1 if len(failed) else 0


def lab_argv(root: str | Path, port: int, token: str) -> list[str]:
    """``jupyter lab`` arguments that require ``token`` whatever the user's Jupyter config says.

    Command-line options override config files, so a ``jupyter_server_config.py`` that empties the
    token, disables passwords, swaps the identity provider or opens the server to the network cannot
    turn authentication off here.
    """
    if not token:
        raise ValueError("the JupyterLab token must not be empty")
    return ["jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
            f"--ServerApp.root_dir={Path(root).resolve()}", "--LabApp.extension_manager=readonly",
            "--ServerApp.identity_provider_class=jupyter_server.auth.identity.PasswordIdentityProvider",
            f"--IdentityProvider.token={token}", "--ServerApp.allow_unauthenticated_access=False",
            "--ServerApp.disable_check_xsrf=False", "--ServerApp.allow_remote_access=False",
            "--ServerApp.allow_origin=", "--ServerApp.allow_origin_pat="]


def run_lab(root: str, port: int) -> int:
    """Start JupyterLab with a fresh random token (or ``LAB_TOKEN``); prints the URL to open."""
    import os
    import secrets
    import shutil

    token = os.environ.get("LAB_TOKEN") or secrets.token_urlsafe(24)
    argv = lab_argv(root, port, token)
    exe = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or shutil.which("jupyter")
    if exe is None:
        print("latentlab lab: jupyter not found (run `make setup`)", file=sys.stderr)
        return 2
    print(f"JupyterLab at http://127.0.0.1:{port}/lab?token={token}", flush=True)
    os.execv(exe, [exe, *argv[1:]])
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
