"""Command line: ``python -m skmm demo``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="FeatProp vs baselines on synthetic data")
    demo.add_argument("--seeds", type=int, default=3, help="random samplings per missing rate")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(seeds=args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
