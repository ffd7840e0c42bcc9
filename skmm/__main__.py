"""skmm command line.

    python -m skmm reproduce featprop|milk|all [--data PATH] [--modalities NAME ...]
                             [--out DIR] [--seeds N] [--quick] [--threads N]
    python -m skmm demo
"""

import argparse
import sys
import time


def _reproduce(args):
    from . import reproduce as rp

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = rp.load_data(args.data, args.modalities, quick=args.quick)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    where = args.data or "the bundled synthetic data"
    print(f"Reproducing on {where}: {data.X.shape[0]} items, {data.Y_train.shape[1]} users, "
          f"modalities {data.modalities}, {seeds} seed(s); results in {args.out}/")
    experiments = ["featprop", "milk"] if args.experiment == "all" else [args.experiment]
    for name in experiments:
        tic = time.perf_counter()
        if name == "featprop":
            rates = rp.QUICK_RATES if args.quick else rp.FEATPROP_RATES
            vbpr = {"max_epochs": 10} if args.quick else None
            rows = rp.reproduce_featprop(data, seeds=seeds, rates=rates, vbpr_params=vbpr,
                                         out=args.out)
            header, table = rp.summarize(rows, ("rate", "strategy"))
        else:
            milk = {"max_epochs": 30} if args.quick else None
            rows = rp.reproduce_milk(data, seeds=seeds, milk_params=milk, out=args.out)
            rows.sort(key=lambda r: rp.MILK_SETTINGS.index(r["setting"]))
            header, table = rp.summarize(rows, ("setting", "model"))
        print(f"\n{name}: mean and std over {seeds} seed(s) "
              f"({time.perf_counter() - tic:.0f}s; {args.out}/{name}.csv, {args.out}/{name}.png)")
        print(rp.format_table(header, table))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skmm",
                                     description="skmm: reproduce the FeatProp and MILK papers.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="rerun a paper's experiment, print a table, plot it")
    rep.add_argument("experiment", choices=["featprop", "milk", "all"])
    rep.add_argument("--data", default=None,
                     help="an MMRec-format folder (default: bundled synthetic data)")
    rep.add_argument("--modalities", nargs="+", default=None,
                     help="feature files to use, by stem (default: all .npy in --data)")
    rep.add_argument("--out", default="skmm_out", help="folder for the CSV and PNG files")
    rep.add_argument("--seeds", type=int, default=None, help="seeds (default 5, 2 with --quick)")
    rep.add_argument("--quick", action="store_true", help="a small, fast version")
    rep.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (default: torch's choice); the models are small, "
                          "so 1 is often fastest on a busy machine")
    demo = sub.add_parser("demo", help="FeatProp imputation quality vs baselines")
    demo.add_argument("--seeds", type=int, default=3, help="random samplings per missing rate")
    args = parser.parse_args(argv)
    if args.command == "reproduce":
        return _reproduce(args)
    from ._demo import run_demo

    run_demo(seeds=args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
