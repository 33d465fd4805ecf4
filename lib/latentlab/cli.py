"""Command line: ``latentlab sweep NOTEBOOK --grid params/<grid>.yaml``."""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentlab", description="latentlab workbook tools")
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="run a notebook over a parameter grid on Dask")
    sweep.add_argument("notebook", help="the study notebook, e.g. notebooks/03_recon_ablation.ipynb")
    sweep.add_argument("--grid", required=True, help="grid YAML, e.g. params/recon_ablation.yaml")
    sweep.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of an existing Dask cluster")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    sweep.add_argument("--threads", type=int, default=1, help="BLAS/torch threads per grid point")
    sweep.add_argument("--out", default=None, help="sweep directory (default runs/sweeps/<grid name>)")
    args = parser.parse_args(argv)

    from latentlab import sweep as sweeps

    try:
        status = sweeps.run_sweep(args.notebook, args.grid, out_dir=args.out, scheduler=args.scheduler,
                                  workers=args.workers, threads_per_worker=args.threads)
    except sweeps.GridError as exc:
        print(f"latentlab sweep: {exc}", file=sys.stderr)
        return 2
    out = status.dir.map(lambda d: d.rsplit("/", 1)[0]).iloc[0]
    summary_error = None
    try:
        table = sweeps.collect(out)
    except (sweeps.ResultsError, sweeps.GridError) as exc:  # results.csv is written before the summary
        table, summary_error = sweeps.load_results(out), exc
    with pd.option_context("display.width", 200, "display.max_colwidth", 120):
        print(status[["point", "ok", "skipped", "seconds", "error"]].to_string(index=False))
        print(f"\n{int(status.ok.sum())}/{len(status)} points complete; table: {out}/results.csv ({len(table)} rows)")
        if len(table) and summary_error is None:
            summary = pd.read_csv(f"{out}/summary.csv")
            print(f"\nsummary over seeds ({out}/summary.csv, chart summary.png/.html):")
            print(sweeps.format_summary(summary).to_string(index=False))
    failed = status[~status.ok]
    for row in failed.itertuples():
        print(f"FAILED {row.point}: {row.error}", file=sys.stderr)
    if summary_error is not None:
        print(f"latentlab sweep: no summary written: {summary_error}", file=sys.stderr)
        return 2
    return 1 if len(failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
