"""Write Study 2's small real-format example (coordinate pairs on a bgzip'd synthetic genome, with truth).

    python tools/make_epi_example.py runs/epi_example [--cell-lines 5] [--pairs-per-cell-line 100] [--seed 0]

Then run the notebook on it exactly as on your own data (README, "Study 2 · Your own data").
"""

import argparse

from latentlab.sfmn import data as epi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--cell-lines", type=int, default=5)
    parser.add_argument("--pairs-per-cell-line", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="write genome.fa instead of bgzip genome.fa.gz")
    args = parser.parse_args()
    paths = epi.write_example(args.directory, n_cell_lines=args.cell_lines,
                              pairs_per_cell_line=args.pairs_per_cell_line, bgzip=not args.plain, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:14s} {path}")


if __name__ == "__main__":
    main()
