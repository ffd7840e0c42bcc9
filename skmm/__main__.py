"""skmm command line.

    python -m skmm reproduce featprop|milk|milk-robustness|imputers|all [--data PATH]
                             [--modalities ...] [--out DIR] [--resume | --overwrite]
                             [--seeds N] [--first-seed S] [--jobs N] [--threads N] [--quick]
                             [--rates R ...] [--model NAME] [--imputers NAME ...]
                             [--similarities NAME ...] [--protocol all|one|both]
                             [--downstream none|vbpr|freedom] [--no-plot] [--debug]
    python -m skmm demo [--seeds N] [--debug]

Nothing heavy (torch, scikit-learn's estimators, matplotlib) is imported before a command
runs, so ``--help`` answers at once. Errors after parsing print one line on stderr and exit 2
(bad usage) or 1 (failure); ``--debug`` adds the traceback. An interrupt exits 130.
"""

import argparse
import inspect
import sys
from pathlib import Path

PROG = "python -m skmm"
_SEED_LIMIT = 2**31 - 1000  # MILK seeds its MTMT training draws with 1000 + seed


class UsageError(Exception):
    """A command line that cannot run as given (exit status 2)."""


def _number(kind, accept, expected):
    """An argparse type: ``kind(text)``, refused unless ``accept(value)``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected  # what argparse names in its own messages
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: 0 <= v < _SEED_LIMIT, f"an integer in [0, {_SEED_LIMIT})")
_rate = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _folder(text):
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    return text


def build_parser():
    """The ``python -m skmm`` argument parser (imports nothing heavy)."""
    from .reproduce import DOWNSTREAM_MODELS, OPTION_CHOICES, REPRODUCTION_PAGE
    from .reproduce._imputers import DEFAULT_IMPUTERS, SIMILARITY_CHOICES, cv_grid_text

    imputer_names = list(dict.fromkeys(n for c in OPTION_CHOICES.values()
                                       for n in c.get("imputers", ())))

    parser = argparse.ArgumentParser(
        prog=PROG, description="skmm: reproduce the FeatProp and MILK papers.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "reproduce", help="rerun a paper's experiment, print a table, plot it",
        description="Rerun a paper's experiment: per-seed rows are written to <out>/<name>.csv "
                    "as each fit ends, then a summary CSV, a plot and a table of means and "
                    "standard deviations over seeds.",
        epilog=f"Results and how to read them: {REPRODUCTION_PAGE} in the skmm source tree.")
    rep.add_argument("experiment", choices=[*_experiment_names(), "all"],
                     help="all: the two papers' experiments, featprop and milk")
    rep.add_argument("--data", type=_folder, default=None,
                     help="an MMRec-format folder (default: bundled synthetic data)")
    rep.add_argument("--modalities", nargs="+", default=None, metavar="NAME",
                     help="feature files of --data to use, by stem (default: every .npy)")
    rep.add_argument("--out", default="skmm_out",
                     help="folder for the CSV, JSON and PNG files (default: skmm_out)")
    existing = rep.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue the results in --out: skip the fits already written "
                               "(refused if they were made with another configuration)")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the results in --out (by default existing results "
                               "are never touched)")
    rep.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                     help="number of seeds (default 5, 2 with --quick)")
    rep.add_argument("--first-seed", type=_seed, default=0, metavar="S",
                     help="the seeds are S, S+1, ..., S+N-1 (default 0)")
    rep.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                     help="fits run in parallel processes, each single-threaded unless "
                          "--threads says otherwise; the rows are those of --jobs 1 "
                          "--threads 1 (default 1)")
    rep.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                     help="CPU threads of each fit (default: torch's choice with --jobs 1, "
                          "else 1); the models are small, so 1 is often fastest")
    rep.add_argument("--quick", action="store_true",
                     help="a small, fast version: smaller synthetic data, fewer missing rates, "
                          "epochs and seeds")
    rep.add_argument("--rates", type=_rate, nargs="+", default=None, metavar="R",
                     help="featprop, imputers: the missing rates, in [0, 1) (default 0.1 ... "
                          "0.9, 0.1 0.3 ... 0.9 with --quick)")
    rep.add_argument("--model", choices=sorted(DOWNSTREAM_MODELS), default=None,
                     help="featprop: the recommender trained on the imputed features "
                          "(default vbpr)")
    rep.add_argument("--imputers", choices=imputer_names, nargs="+", default=None,
                     metavar="NAME",
                     help="the imputers compared; featprop: among "
                          f"{', '.join(OPTION_CHOICES['featprop']['imputers'])} (default: "
                          f"all); imputers: among "
                          f"{', '.join(OPTION_CHOICES['imputers']['imputers'])} (default: "
                          f"{' '.join(DEFAULT_IMPUTERS)}; cv: "
                          f"{cv_grid_text().replace('%', '%%')}, about 3 s a fit on Last.fm "
                          f"2K)")
    rep.add_argument("--similarities", choices=SIMILARITY_CHOICES, nargs="+", default=None,
                     metavar="NAME",
                     help="imputers: the co-interaction similarities of the graph imputers, "
                          f"among {', '.join(SIMILARITY_CHOICES)} (default: count cosine "
                          "jaccard, count cosine with --quick)")
    rep.add_argument("--protocol", choices=("all", "one", "both"), default=None,
                     help="imputers: which items lose what: all (FeatProp: an item loses every "
                          "modality), one (MILK: it loses one) or both (default)")
    rep.add_argument("--downstream", choices=("none", *sorted(DOWNSTREAM_MODELS)),
                     default=None,
                     help="imputers: also train this recommender on each imputation and "
                          "report its Recall@20 / NDCG@20 (default none: imputation quality "
                          "only; downstream training is the expensive part, one training per "
                          "row)")
    rep.add_argument("--no-plot", action="store_true",
                     help="write no PNG (then matplotlib is not needed)")
    rep.add_argument("--debug", action="store_true", help="show the traceback of an error")
    rep.set_defaults(func=_reproduce)
    demo = sub.add_parser("demo", help="FeatProp imputation quality vs baselines")
    demo.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                      help="random samplings per missing rate (default 3)")
    demo.add_argument("--debug", action="store_true", help="show the traceback of an error")
    demo.set_defaults(func=_demo)
    return parser


def _demo(args):
    from ._demo import run_demo

    run_demo(seeds=args.seeds)
    return 0


def _reproduce(args):
    from . import reproduce as rp

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} is an existing file; name a folder.")
    _check_modalities(args)
    names = ["featprop", "milk"] if args.experiment == "all" else [args.experiment]
    options = _experiment_options(args, names, rp.EXPERIMENTS)
    n_seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    if args.first_seed + n_seeds > _SEED_LIMIT:
        raise UsageError(f"--first-seed {args.first_seed} with --seeds {n_seeds} passes the "
                         f"largest seed, {_SEED_LIMIT - 1}.")
    if not args.no_plot:
        rp.check_matplotlib()
    seeds = tuple(range(args.first_seed, args.first_seed + n_seeds))
    data = rp.load_data(args.data, args.modalities, quick=args.quick)
    experiments = []
    for n in names:  # an experiment may come with companions (imputers: its homophily)
        made = rp.EXPERIMENTS[n](data, seeds=seeds, quick=args.quick, **options[n])
        experiments += list(made) if isinstance(made, (list, tuple)) else [made]
    where = args.data or "the bundled synthetic data"
    seed_range = f"seed {seeds[0]}" if n_seeds == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    print(f"Reproducing on {where}: {data.X.shape[0]} items, {data.Y_train.shape[1]} users, "
          f"modalities {data.get('modality_names')} {data.modalities}, {seed_range}; "
          f"results in {out}/")
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "error"
    results = rp.run_experiments(experiments, data, out=out, if_exists=mode, jobs=args.jobs,
                                 threads=args.threads, plots=not args.no_plot)
    for e in experiments:
        files = [f"{e.name}.csv", f"{e.name}_summary.csv"] + \
            ([] if args.no_plot or e.report.plot is None else [f"{e.name}.png"])
        print(f"\n{rp.format_report(e, results[e.name])}\nFiles: "
              + ", ".join(str(out / f) for f in files))
    return 0


def _check_modalities(args):
    if args.modalities is None:
        return
    if args.data is None:
        raise UsageError("--modalities needs --data: the synthetic data has fixed modalities.")
    folder = Path(args.data)
    available = sorted(p.stem for p in folder.glob("*.npy"))
    missing = [m for m in args.modalities if not (folder / f"{m}.npy").is_file()]
    if missing:
        raise UsageError(f"--modalities: no {', '.join(m + '.npy' for m in missing)} in "
                         f"{args.data} (its feature files: {', '.join(available) or 'none'}).")
    if len(set(args.modalities)) != len(args.modalities):
        raise UsageError(f"--modalities names a file twice: {' '.join(args.modalities)}.")


def _experiment_names():
    """The registered experiments (``skmm.reproduce`` imports nothing heavy)."""
    from . import reproduce as rp

    return list(rp.EXPERIMENTS)


def _experiment_options(args, names, experiments):
    """The options given on the command line, for each experiment that takes them."""
    from .reproduce import OPTION_CHOICES

    given = {k: getattr(args, k)
             for k in ("rates", "model", "imputers", "similarities", "protocol", "downstream")
             if getattr(args, k) is not None}
    takes = {n: inspect.signature(f).parameters for n, f in experiments.items()}
    options = {n: {} for n in names}
    for key, value in given.items():
        users = [n for n in names if key in takes[n]]
        if not users:
            owners = [n for n in experiments if key in takes[n]]
            raise UsageError(f"--{key} applies to {' and '.join(owners)} only, not to "
                             f"{' and '.join(names)}.")
        for n in users:
            allowed = OPTION_CHOICES.get(n, {}).get(key)
            wrong = [] if allowed is None else [v for v in value if v not in allowed]
            if wrong:
                raise UsageError(f"--{key}: {n} compares {', '.join(allowed)}, not "
                                 f"{', '.join(wrong)}.")
            options[n][key] = value
    return options


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 0
    from .reproduce import Interrupted, RefusedError

    try:
        return args.func(args)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UsageError, RefusedError) as exc:
        return _fail(exc, 2, args.debug)
    except Exception as exc:
        return _fail(exc, 1, args.debug)


def _fail(exc, status, debug):
    if debug:
        import traceback

        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (UsageError, ValueError, TypeError, OSError, ImportError)):
        message = f"{type(exc).__name__}: {message}"
    print(f"skmm: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
