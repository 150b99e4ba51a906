"""The ``featurepipe`` command: argument parsing only; each command calls one API function.

Exit codes: 0 success, 3 success with skipped files (see the error ledger), 1 failure (also: no entry has
the key given), 2 bad usage (also: a key prefix that several entries share, a malformed option value),
config or trained-head folder (``evaluate`` / ``predict`` refuse a folder they cannot trust).
"""
from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3


def _config(args):
    """The config file with ``--set`` overrides and the typed options (``--jobs``, ``--data``...) applied."""
    from .config import load_config

    values = {f"run.{name}": getattr(args, name) for name in
              ("jobs", "backend", "scheduler", "on_error", "cache_dir", "chunk_size") if getattr(args, name, None) is not None}
    if getattr(args, "data", None):
        values["dataset.path"] = args.data
    if getattr(args, "hash", False):
        values["dataset.hash"] = True
    if getattr(args, "no_progress", False):
        values["run.progress"] = False
    return load_config(args.config, args.set or [], values)


def _run_settings(args):
    """``evaluate`` / ``predict`` / ``compare``: the run settings from this invocation's options (and defaults and
    environment), never from the head's folder."""
    from pydantic import ValidationError

    from .config import ConfigError, RunConfig

    given = {name: getattr(args, name) for name in ("jobs", "backend", "scheduler", "cache_dir")
             if getattr(args, name) is not None}
    try:
        return RunConfig(**given, progress=not args.no_progress)
    except ValidationError as e:
        error = e.errors()[0]
        raise ConfigError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}") from None


def cmd_extract(args) -> int:
    from .extract import extract_features

    cfg = _config(args)
    result = extract_features(cfg)
    source = "from the cache" if result.computed == 0 else f"{result.computed} computed"
    line = (f"extracted {result.n_items} items ({source}) in {result.seconds:.1f} s: "
            f"{result.n_ok} ok, {result.n_failed} skipped; entry {result.key}")
    if result.n_failed:
        line += f"; ledger: {result.ledger}"
    print(line)
    print(_after_extract(args, cfg, result))
    return EXIT_SKIPPED if result.n_failed else EXIT_OK


def _after_extract(args, cfg, result) -> str:
    """What to run after ``extract`` (``train`` with the options that chose these features, or what training
    needs first) and where the features and the trained heads go, on one line."""
    import shlex
    from pathlib import Path

    from .store import FeatureStore

    same = ["--config", args.config, *(["--data", args.data] if args.data else []),
            *[token for item in args.set or [] for token in ("--set", item)],
            *(["--cache-dir", args.cache_dir] if args.cache_dir else []), *(["--hash"] if args.hash else [])]
    heads = ", ".join(head.name or head.model or "late fusion" for head in cfg.heads)
    run = Path(cfg.output).expanduser().absolute()
    items = FeatureStore(cfg.run.cache_dir).items(result.key)
    splits = set(items["splits"] or ())
    if items["labels"] is None:
        then = "training needs labels: class sub-folders (or a CSV label column)"
    elif not {"train", "test"} <= splits:
        then = (f"training needs a test split: test/<class>/ folders, or set dataset.test_fraction in {args.config} "
                "(e.g. --set dataset.test_fraction=0.2)")
    elif heads:
        then = f"next: featurepipe train {shlex.join(same)} (heads {heads}, written to {run})"
    else:
        then = f"next: name heads under heads: in {args.config}, then featurepipe train {shlex.join(same)}"
    return f"features in {result.ledger.parent}; {then}"


def cmd_list(args) -> int:
    import inspect

    from . import catalog

    chosen = catalog.kinds() if args.kind == "all" else [args.kind] if args.kind else list(catalog.FEATURE_KINDS)
    for kind in chosen:
        names = catalog.list(kind, args.pattern)
        if not names:
            continue
        print("preprocessing steps:" if kind == "preprocess" else f"{kind}s:")
        for name in names:
            params = ", ".join(f"{k}" if v is inspect.Parameter.empty else f"{k}={v!r}"
                               for k, v in catalog.defaults(kind, name).items())
            doc = (catalog.get(kind, name).__doc__ or "").strip().splitlines()
            print(f"  {name}({params})" + (f"\n      {doc[0]}" if doc else ""))
    if not args.kind:
        rest = [k for k in catalog.kinds() if k not in catalog.FEATURE_KINDS]
        print(f"(also: featurepipe list --kind {'|'.join(rest)}|all)")
    return EXIT_OK


def cmd_cache(args) -> int:
    from . import cache
    from .store import FeatureStore

    store = FeatureStore(_cache_root(args))
    if args.action == "ls":
        print("\n".join(cache.listing(store, args.keys)))
        return EXIT_OK
    if args.action == "verify":
        return EXIT_OK if cache.verify(store, args.keys) else EXIT_FAILED
    if args.action == "rm":
        if not args.keys:
            print("featurepipe: cache rm: name the entries to remove (keys from `featurepipe cache ls`)", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK if cache.rm(store, args.keys) else EXIT_FAILED
    if args.action == "gc":
        cache.gc(store, args.max_size, args.older_than)
        return EXIT_OK
    from .export import export_features

    done = export_features(store, store.lookup(args.key)["key"], args.to)
    print(f"{'replaced' if done.replaced else 'wrote'} {done.path}: {done.rows} rows x {done.width} features")
    return EXIT_OK


def _cache_root(args) -> str:
    """The cache folder of a ``cache`` command: ``--cache-dir``, else the config's ``run.cache_dir``, else the
    default (``$FEATUREPIPE_CACHE`` or ``~/.cache/featurepipe``)."""
    from .config import RunConfig, load_config

    if args.cache_dir is not None:
        return args.cache_dir
    return load_config(args.config).run.cache_dir if args.config else RunConfig().cache_dir


def cmd_train(args) -> int:
    from .train import train_heads

    train_heads(_config(args), args.output, force=args.force, verbose=args.verbose)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    import json

    from .evaluate import evaluate
    from .summary import calibration_text

    metrics = evaluate(args.model, args.split, _run_settings(args), args.data)
    print(f"{args.model}: {args.split} accuracy {metrics['accuracy']:.2%} on {metrics['n']} items"
          f"{calibration_text(metrics)}")
    if args.json:
        print(json.dumps(metrics, indent=1))
    return EXIT_OK


def cmd_predict(args) -> int:
    from .predict import predict

    done = predict(args.model, args.images, args.out, _run_settings(args), top_k=args.top_k)
    refused = f"{done.n_refused} refused, listed in {done.ledger}" if done.n_refused else "none refused"
    print(f"{done.n_labelled} image{'' if done.n_labelled == 1 else 's'} labelled in {done.table}; {refused}")
    return EXIT_SKIPPED if done.n_refused else EXIT_OK


def cmd_compare(args) -> int:
    from .compare import compare_heads, compare_text

    print(compare_text(compare_heads(args.first, args.second, _run_settings(args))))
    return EXIT_OK


def cmd_bench(args) -> int:
    from .bench import report_folder, run_bench
    from .report import table_markdown

    cfg = _config(args)
    rows = run_bench(cfg, quick=args.quick, output=args.output, name=Path(args.config).stem)
    print(table_markdown(rows))
    print(f"report: {report_folder(cfg, args.output) / 'report.html'} (tables: results.md, results.csv, results.json)")
    return EXIT_OK


def cmd_show(args) -> int:
    from .show import show_image

    out, notes = show_image(_config(args), args.image, args.pipeline, args.out)
    for line in notes:
        print(f"featurepipe: {line}", file=sys.stderr)
    print(f"wrote {out}")
    return EXIT_OK


def _add_run_options(p):
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--data", help="dataset path (same as --set dataset.path=...)")
    _add_worker_options(p)
    p.add_argument("--on-error", dest="on_error", choices=["skip", "fail"], help="skip bad files or stop")
    p.add_argument("--chunk-size", dest="chunk_size", type=int, help="items per chunk")
    p.add_argument("--hash", action="store_true", help="identify files by content hash, not size+mtime")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")


def _add_worker_options(p):
    """Where features are computed and kept: options of every command that computes them."""
    p.add_argument("--jobs", type=int, help="worker processes (-1: all cores)")
    p.add_argument("--backend", choices=["loky", "dask"], help="local processes or a Dask cluster")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--cache-dir", dest="cache_dir", help="feature cache folder")


def _add_head_options(p):
    """``evaluate`` / ``predict``: the head's folder, and the run settings, which a folder never gives."""
    p.add_argument("model", help="a trained head's folder (written by train)")
    _add_worker_options(p)
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")


PREDICT_TABLE = """Label an image file, or every image of a folder, with a trained head. The CSV (--out) has a
row per image: path (relative to the folder), label (the most probable class), probability (its
probability), then label_2, probability_2, ... label_K, probability_K (the next most probable, K =
--top-k). Probabilities are a log-loss head's own (softmax) or, for a hinge-loss head (SVM), its scores
Platt-scaled on its validation folds; over all classes they sum to 1. Files that cannot be read are
listed, with the reason, beside the CSV: p.csv -> p.refused.csv."""


def _at_least_one(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="featurepipe", description="Classical image features, cached, "
                                     "with numpy heads and a benchmark against learned features.")
    parser.add_argument("--version", action="version", version=f"featurepipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extract", help="extract features for a data set into the cache")
    _add_run_options(p)
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("train", help="train the heads a config names on its (cached) features")
    _add_run_options(p)
    p.add_argument("--output", help="run folder for the trained heads (default: the config's output, relative to "
                                    "the working folder); refused when not empty, unless --force")
    p.add_argument("--force", action="store_true", help="replace the heads of the same names in a run folder that "
                                                         "is not empty")
    p.add_argument("-v", "--verbose", action="store_true", help="also print every grid point's validation accuracy "
                                                               "on each split, each head's grid and epoch bars")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("bench", help="compare pipelines x heads on one data set and write a report")
    _add_run_options(p)
    p.add_argument("--quick", action="store_true", help="the same matrix on a small per-class subset")
    p.add_argument("--output", help="report folder (default: the config's output)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("show", help="draw one image as a pipeline sees it: HOG cells, visual words, colour histogram")
    p.add_argument("image", help="an image file")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--pipeline", help="which of the config's bench.pipelines (default: its pipeline)")
    p.add_argument("--out", help="PNG to write (default: IMAGE-PIPELINE.png in this folder)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--data", help="the data set whose fitted vocabulary to use (same as --set dataset.path=...)")
    p.add_argument("--cache-dir", dest="cache_dir", help="feature cache folder")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("evaluate", help="score a trained head on a split of its data set")
    _add_head_options(p)
    p.add_argument("--data", help="the data set's path (default: the one the head was trained on)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="also print per-class accuracy and the confusion matrix")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("predict", help="label unlabelled images with a trained head: labels with probabilities",
                       description=PREDICT_TABLE)
    _add_head_options(p)
    p.add_argument("images", help="an image file, or a folder of images (searched recursively)")
    p.add_argument("--out", help="CSV to write (default: MODEL/predictions.csv)")
    p.add_argument("--top-k", dest="top_k", type=_at_least_one, default=3, metavar="K",
                   help="the K most probable labels per image (default: 3; at most the number of classes)")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("compare", help="whether two trained heads differ on the same test images (paired, McNemar)")
    p.add_argument("first", help="a trained head's folder (RUN/HEAD, written by train)")
    p.add_argument("second", help="another, trained on the same data set")
    _add_worker_options(p)
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("list", help="list what configs can name: extractors, preprocessing steps, heads...")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'h*'")
    p.add_argument("--kind", help="one kind (extractor, head, optimizer...) or 'all' (default: the feature side)")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("cache", help="inspect, check, export and clean the cache")
    _add_cache_options(p, default=None)
    p.set_defaults(func=cmd_cache)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    keys = "entry keys, or prefixes of them that no other key shares"
    q = actions.add_parser("ls", help="the cache folder, its entries (age, last use, size, parameters), the total")
    q.add_argument("keys", nargs="*", help="show only the entries whose key starts with one of these")
    q = actions.add_parser("verify", help="check entries: feature chunks, fitted pipelines, heads, data sets")
    q.add_argument("keys", nargs="*", help=f"{keys} (default: every entry)")
    q = actions.add_parser("rm", help="remove entries and what depends on them (refused while a run writes or reads one)")
    q.add_argument("keys", nargs="*", help=keys)
    q = actions.add_parser("export", help="write a feature entry's matrix, item paths and labels to .npz or .parquet")
    q.add_argument("key", help="a feature entry's key, or a prefix of it that no other key shares")
    q.add_argument("--to", required=True, metavar="FILE", help="FILE.npz, or FILE.parquet (needs pyarrow)")
    q = actions.add_parser("gc", help="evict least recently used entries (--max-size, --older-than), then remove "
                                      "orphans and dead writers' temporary files")
    q.add_argument("--max-size", dest="max_size", metavar="SIZE", help="evict until the cache holds at most SIZE "
                   "(K, M, G, T: powers of 1024, e.g. 10G)")
    q.add_argument("--older-than", dest="older_than", metavar="AGE", help="evict entries unused for longer than AGE "
                   "(s, m, h, d, e.g. 30d)")
    for q in actions.choices.values():
        _add_cache_options(q, default=argparse.SUPPRESS)  # also after the action, where a given value wins
    return parser


def _add_cache_options(p, default):
    """Where a ``cache`` command finds the cache: ``--cache-dir``, or the config ``--config`` names."""
    p.add_argument("--cache-dir", dest="cache_dir", default=default, help="feature cache folder")
    p.add_argument("--config", default=default, help="a config whose run.cache_dir is the cache folder "
                   "(when --cache-dir is not given)")


_interrupted = threading.Event()


def _interrupt(signum, frame):
    _interrupted.set()
    raise KeyboardInterrupt


def _thread_exception(args, show=threading.excepthook):
    """After an interrupt, loky's manager thread can fail while joblib tears the worker pool down (a
    ``KeyError`` in ``add_call_item_to_queue``, joblib/loky#663); the run already says in one line that it
    was interrupted, so that traceback is dropped. Any other thread's exception shows as Python shows it."""
    if _interrupted.is_set() and args.thread is not None and args.thread.name == "ExecutorManagerThread":
        return
    show(args)


_reported = threading.Event()  # the interrupt has been caught and is being reported


def _unraisable(args, show=sys.unraisablehook):
    """A signal that lands while Python runs a finalizer (a weakref callback, a ``__del__``) raises its
    ``KeyboardInterrupt`` there, where Python can only print it ("Exception ignored in ...", a traceback) and
    go on: the interrupt would be lost and the run would finish as if never stopped. It is delivered to the
    main thread again instead, without the message. Once the interrupt is reported, what the finalizers of
    the I/O it cut short raise at exit (zarr's event loop, its tasks) is dropped too: the run said it was
    interrupted, and committed chunks are whole."""
    if _reported.is_set():
        return
    if issubclass(args.exc_type, KeyboardInterrupt):
        _thread.interrupt_main(signal.SIGINT)
        return
    show(args)


def _quiet_interrupted_io() -> None:
    """zarr does its I/O on an asyncio event loop in a thread of its own; an interrupt can leave tasks of that
    loop pending, and when the interpreter exits asyncio logs each one ("Task was destroyed but it is
    pending!", several lines apiece). Chunks are committed atomically, so nothing is lost, and the run
    already says in one line that it was interrupted: those messages are dropped."""
    import logging

    logging.getLogger("asyncio").disabled = True


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line naming its kind, without the source line Python adds."""
    print(f"featurepipe: warning: {category.__name__}: {message}", file=file or sys.stderr)


def _parse(argv) -> argparse.Namespace:
    """The parsed command line; options may come anywhere, also between the keys a command takes (argparse
    alone stops taking keys at the first option)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and isinstance(getattr(args, "keys", None), list) and not any(a.startswith("-") for a in rest):
        args.keys += rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv=None) -> int:
    with warnings.catch_warnings():  # the one-line format stays inside this call
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv) -> int:
    # Unreadable files are reported once, in the error ledger; OpenCV's own log lines would repeat them.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    # File names that are not valid UTF-8 print with their bytes escaped instead of crashing the output.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # SIGTERM ends a run as Ctrl-C does: workers stopped, committed chunks kept, one line; joblib's
    # warning that an interrupted generator left tasks unused or cancelled them would add lines to it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    threading.excepthook = _thread_exception
    sys.unraisablehook = _unraisable
    warnings.filterwarnings("ignore", module="joblib",
                            message=r"\d+ tasks (have been successfully executed|which were still being processed)")
    args = _parse(argv)
    from .errors import ConfigError, ExtractError, TrainedFolderError, UsageError

    try:
        return args.func(args)
    except ConfigError as e:
        from .limits import one_line

        print(one_line(f"featurepipe: config error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except TrainedFolderError as e:
        print(f"featurepipe: refused: {e}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as e:
        print(f"featurepipe: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _reported.set()
        _quiet_interrupted_io()
        print("featurepipe: interrupted; committed chunks are kept and the next run resumes", file=sys.stderr)
        return EXIT_FAILED
    except (ExtractError, OSError, ValueError, KeyError) as e:
        print(f"featurepipe: error: {str(e).strip(chr(39))}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
