"""The one fit-and-score path of ``featurepipe train``, ``bench`` and ``evaluate``.

A head is fitted on stored features: the training rows (with their augmented copies) are read from
the store, normalised and searched over the head's grid on validation splits of the training split
(``selection.py``); the chosen setting is refit on the whole training split and the test rows are
scored once, for it. The result -- model, normalisation, a record of every score, the chosen setting's
decision values on the validation rows and, for a head that gives only scores, the Platt scaling fitted
on them -- is kept in the store's ``heads``
namespace, so a re-run fits nothing that did not change.
"""
from __future__ import annotations

import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax
from sklearn.base import clone

from .calibration import OutOfFold, PlattScaling, fit_platt
from .config import Config, ConfigError, HeadConfig, TrainConfig
from .core import REGISTRY, iter_stages
from .fingerprint import defining_modules, modules_code_version, to_json
from .heads.grid import is_grid, map_in_order
from .matrix import Segment, build_matrix, fit_normalization, iter_blocks
from .metrics import ece, score_predictions
from .normalize import Normalization
from .selection import Search, make_splits, normalization_options
from .store import OK, DamagedEntryError, FeatureStore
from .trained import TrainedFolderError, load_bundle, save_bundle


@dataclass
class TrainingData:
    """The rows a head learns from: feature entry ``key`` of a data set with train/test splits, and entries
    of augmented copies of its training images (``augment``, rows aligned with the training items)."""

    store: FeatureStore
    key: str
    augment: list = field(default_factory=list)

    def __post_init__(self):
        items = self.store.items(self.key)
        if items["splits"] is None or items["labels"] is None:
            raise ValueError("dataset: training needs labels and train/ and test/ splits (or a CSV split column)")
        status = self.store.status(self.key)
        self.labels = np.asarray(items["labels"])
        splits = np.asarray(items["splits"])
        self.classes = sorted(set(items["labels"]))
        train_items = np.flatnonzero(splits == "train")
        self.train_rows = train_items[status[train_items] == OK]
        self.test_rows = np.flatnonzero((splits == "test") & (status == OK))
        # Position of each training row among the training items: its row in an augmented entry.
        self._item_index = np.searchsorted(train_items, self.train_rows)
        self._augment_ok = [self.store.status(key) == OK for key in self.augment]

    def segments(self, train_positions: np.ndarray, augmented: bool) -> tuple[list[Segment], np.ndarray]:
        """Segments of the training rows at ``train_positions`` (indices into ``train_rows``), followed by
        their augmented copies when ``augmented``; and the labels of all those rows, in order."""
        rows = self.train_rows[train_positions]
        segments = [Segment(self.key, rows)]
        labels = [self.labels[rows]]
        for key, ok in zip(self.augment if augmented else [], self._augment_ok):
            kept = train_positions[ok[self._item_index[train_positions]]]
            segments.append(Segment(key, self._item_index[kept]))
            labels.append(self.labels[self.train_rows[kept]])
        return segments, np.concatenate(labels)


@dataclass
class HeadResult:
    """A fitted head, its normalisation, the record of its selection and scores, for a head without
    probabilities of its own the Platt scaling that gives them (``calibration.py``), and its search's
    out-of-fold decision values (what late fusion, ``fusion.py``, learns from)."""

    model: object
    normalization: Normalization
    record: dict
    calibration: PlattScaling | None = None
    out_of_fold: OutOfFold | None = None


def head_key(data: TrainingData, head: HeadConfig, train: TrainConfig) -> str:
    """The store key of a head fitted by ``fit_and_score`` (its name and progress bars do not change it)."""
    params = {k: v for k, v in head.params.items() if k != "verbose"}
    code = head_code_version(head.model, params, normalization_options(head.normalize or train.normalize))
    return FeatureStore.key("heads", features=data.key, augment=list(data.augment),
                            head={**head.model_dump(exclude={"pipeline", "late"}), "params": params, "name": None},
                            train=train.model_dump(),
                            code=code)


def head_code_version(model: str, params: dict, options: list) -> str:
    """The version of the code a head search computes with: the modules that define the head's stages (with
    its parameters that are not searched), the normalisers' and this fit-and-score path's, and what those
    import."""
    import featurepipe.heads  # noqa: F401  (registers the heads)

    head_class = REGISTRY.get("head", model)
    defaults = head_class().get_params()
    fixed = {k: v for k, v in params.items() if v != "auto" and not is_grid(v, defaults.get(k))}
    stages = [head_class(**fixed), *(Normalization.from_spec(option) for option in options)]
    classes = tuple(type(s) for stage in stages for _, s in iter_stages(stage))
    return modules_code_version(defining_modules(classes) + (__name__,))


def fit_and_score(data: TrainingData, head: HeadConfig, train: TrainConfig, *, verbose: bool = False,
                  log=None, map_tasks=map_in_order) -> HeadResult:
    """Fit, select, refit and score ``head`` on ``data`` with the ``train`` settings (``head.normalize``, when
    set, instead of ``train.normalize``); reuse the stored result if any. ``log(split, n_splits, normalize,
    params, validation_accuracy)`` is called after each grid point; the search's independent fits run through
    ``map_tasks`` (``runner.map_in_processes(jobs)`` for several cores): a search by Gram matrix finds the
    same models either way; one on features, models up to the rounding of BLAS threads (a worker has one)."""
    key = head_key(data, head, train)
    stored = cached_head(data.store, key)
    if stored is not None:  # stored under another name, perhaps (a name is no part of the key)
        stored.record = {**stored.record, "head": head.name}
        return stored
    import featurepipe.heads  # noqa: F401  (registers the heads)

    head_class = REGISTRY.get("head", head.model)
    params = dict(head.params)
    params.setdefault("verbose", verbose)
    method, splits = make_splits(data.labels[data.train_rows], train.selection, train.validation_fraction,
                                 train.folds, train.seed)
    start = time.perf_counter()
    search = Search(data, head_class, params, splits, normalization_options(head.normalize or train.normalize),
                    keep=method == "holdout" and train.refit, log=log, map_tasks=map_tasks)
    search.run_and_extend()
    best = search.best()
    search_seconds = time.perf_counter() - start
    model, normalization, train_score, fit_seconds, peak = _refit(search, best, train.refit)
    decision, labels = search.out_of_fold(best)
    out_of_fold = OutOfFold(decision, np.concatenate([data.train_rows[split.val] for split in splits]))
    # Scores only (hinge losses): probabilities from sigmoids fitted on the chosen setting's validation scores.
    calibration = None if hasattr(model, "predict_proba") else fit_platt(decision, labels, model.classes_)
    test_score = score_rows(data.store, data.key, data.test_rows, data.labels[data.test_rows], model, normalization,
                            data.classes, calibration)
    record = {
        "head": head.name, "model": head_class.__name__, "feature_key": data.key, "augment_keys": list(data.augment),
        "feature_dim": int(data.store.dimension(data.key)), "input_dim": int(model.n_features_in_),
        "selection": {"method": method, "splits": len(splits), "validation_fraction": train.validation_fraction,
                      "folds": train.folds, "refit": train.refit},
        "grid": search.results(), "chosen": {"normalize": best["normalize"], "params": best["params"]},
        "at_edge": search.edges(), "search_seconds": search_seconds,
        "solvers": [{"normalize": option, "solver": search.solver(n)} for n, option in enumerate(search.options)],
        "fit_seconds": fit_seconds, "peak_fit_mib": peak / 2**20, "epochs": int(model.n_iter_),
        "history": model.history_, "train": train_score,
        "val": {"accuracy": best["val_accuracy"], "n": int(sum(len(s.val) for s in splits))},
        "test": test_score, "classes": data.classes, "image_shape": data.store.attrs(data.key).get("image_shape"),
    }
    return save_head(data.store, key, HeadResult(model, normalization, to_json(record), calibration, out_of_fold))


def _refit(search: Search, best: dict, refit: bool):
    """The final model -- the chosen setting refit on every training row, or with ``refit`` false fitted on
    the first split's fit rows -- with its scores on the original training rows it saw, fit seconds and
    peak traced memory. A holdout search's matrix is reused when it has the chosen normalisation, and an
    L-BFGS refit is a warm start from the search's model at that setting. A mini-batch refit starts afresh:
    warm, it would add its epochs to the search's and train another model than the one chosen."""
    data, kept, model = search.data, search.kept, search.kept_model(best)
    if model is not None:
        split = search.splits[0]
        warm = model._part("optimizer").full_batch
        model, seconds, peak = _timed_fit(model.set_params(warm_start=warm), kept.matrix, kept.y)
        model.set_params(warm_start=False)  # the head as configured, for whoever fits it next
        # The original rows are two slices (views): a fancy index would copy them, 6.4 GB at CIFAR-10's 32,000-d.
        originals = [slice(0, len(split.fit)), slice(kept.n_fit, kept.n_fit + len(split.val))]
        scored = score_predictions(np.concatenate([kept.y[rows] for rows in originals]),
                                   np.concatenate([model.predict(kept.matrix[rows]) for rows in originals]),
                                   data.classes)
        return model, kept.normalization, scored, seconds, peak
    model = search.head_class(**{**search.params, **best["params"]})
    positions = np.arange(len(data.train_rows)) if refit else search.splits[0].fit
    segments, y = data.segments(positions, augmented=True)
    option = search.options.index(best["normalize"])
    K = search.all_rows_gram(option) if refit else None
    grams = search.grams.get(option)
    if grams is not None and grams.kernel is not None:
        normalization, matrix = _kernel_features(data.store, segments, grams, K)
        K = None  # the kernel's, not the features' Gram matrix
    else:
        normalization = fit_normalization(data.store, segments, Normalization.from_spec(best["normalize"]))
        matrix = build_matrix(data.store, segments, normalization)
    if K is not None and model.solves_by_gram(*matrix.shape):
        model, seconds, peak = _timed_fit(model, matrix, y, fit=lambda X, y: model.fit_by_gram(X, y, K))
    else:
        model, seconds, peak = _timed_fit(model, matrix, y)
    originals = len(positions)
    scored = score_predictions(y[:originals], model.predict(matrix[:originals]), data.classes)
    return model, normalization, scored, seconds, peak


def _kernel_features(store, segments, grams, K):
    """The normalisation ending in an exact kernel fitted on the rows of ``segments`` and those rows' features
    (``K U L^(-1/2)``, from their kernel matrix ``K``: the search's when given, else computed)."""
    before = fit_normalization(store, segments, clone(grams.before))
    rows = build_matrix(store, segments, before)
    K = grams.kernel.kernel_matrix(rows) if K is None else K
    kernel = clone(grams.kernel).fit_kernel(rows, K)
    return Normalization((*before.steps, kernel)), (K @ kernel.coefficients_).astype(np.float32)


def _timed_fit(model, X, y, fit=None):
    """Fit ``model`` (by ``fit(X, y)`` when given); also returns its seconds and the peak memory it allocated
    (tracemalloc, bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    (fit or model.fit)(X, y)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return model, seconds, peak


def predict_rows(store, key, rows, model, normalization) -> np.ndarray:
    """Labels ``model`` gives rows ``rows`` of entry ``key``, read and normalised a block at a time."""
    predicted = np.empty(len(rows), dtype=np.asarray(model.classes_).dtype)
    for positions, block in iter_blocks(store, key, rows) if len(rows) else []:
        predicted[positions] = model.predict(normalization.transform(block))
    return predicted


def score_rows(store, key, rows, labels, model, normalization, classes, calibration=None) -> dict:
    """Scores of ``model`` on rows ``rows`` of entry ``key`` (see ``predict_rows``), and how well calibrated its
    probabilities are (``calibration_scores``)."""
    scores = score_predictions(labels, predict_rows(store, key, rows, model, normalization), classes)
    if len(rows) and hasattr(model, "decision_function"):
        scores.update(calibration_scores(store, key, rows, labels, model, normalization, calibration))
    return scores


def calibration_scores(store, key, rows, labels, model, normalization, calibration=None) -> dict:
    """The expected calibration error (``metrics.ece``) on rows ``rows`` of the probabilities ``predict`` gives:
    the head's own (softmax) or, for a head with a Platt ``calibration``, its calibrated scores -- then also
    ``ece_uncalibrated``, that of the softmax of its raw scores, the probabilities one would read off an
    uncalibrated SVM."""
    classes = np.asarray(model.classes_)
    labels = np.asarray(labels, classes.dtype)
    found = np.minimum(np.searchsorted(classes, labels), len(classes) - 1)
    truth = np.where(classes[found] == labels, found, -1)  # a class the head never saw is never right
    own, raw = np.empty((len(rows), len(classes))), np.empty((len(rows), len(classes)))
    for positions, block in iter_blocks(store, key, rows):
        decision = model.decision_function(normalization.transform(block))
        scores = np.column_stack([np.zeros(len(decision)), decision]) if decision.ndim == 1 else decision
        raw[positions] = softmax(np.asarray(scores, np.float64), axis=1)
        own[positions] = raw[positions] if calibration is None else calibration.predict_proba(decision)
    if calibration is None:
        return {"ece": ece(truth, own)}
    return {"ece": ece(truth, own), "ece_uncalibrated": ece(truth, raw)}


# -- storage in the store's ``heads`` namespace: head bundles (``trained.py``) ----------------------------
def save_head(store: FeatureStore, key: str, result: HeadResult) -> HeadResult:
    """Keep ``result`` under ``key``: its bundle, and the record in the entry's own record."""
    record = result.record
    store.save_head(key, {"record": record, "parents": [record["feature_key"], *record["augment_keys"]],
                          "what": f"{record['head']}: {record['model']} on {record['feature_key'][:8]}, "
                                  f"test {record['test']['accuracy']:.1%}"},
                    lambda folder: save_bundle(folder, result))
    return result


def load_head(store: FeatureStore, key: str) -> HeadResult | None:
    """The head stored under ``key``, checked (``trained.load_bundle``), or None when there is none."""
    found = store.load_head(key)
    if found is None:
        return None
    entry, folder = found
    bundle = load_bundle(folder)
    return HeadResult(bundle.model, bundle.normalization, entry["record"], bundle.calibration, bundle.out_of_fold)


def cached_head(store: FeatureStore, key: str) -> HeadResult | None:
    """``load_head``; a damaged entry is removed, with one line saying so, and None returned: fit it again."""
    try:
        return load_head(store, key)
    except (TrainedFolderError, DamagedEntryError, KeyError) as e:
        print(f"featurepipe: cached head {key}: {str(e).strip(chr(39))}; fitting it again", file=sys.stderr,
              flush=True)
        store.remove(key)
        return None


# -- the heads a config names ----------------------------------------------------------------------------
def named_heads(cfg: Config) -> list[HeadConfig]:
    """The config's heads, each with its name (``<model><index>``, ``late<index>`` for a late fusion, when it
    has none), refused before any work when a model or a parameter is unknown (naming the config key)."""
    from . import catalog

    if not cfg.heads:
        raise ConfigError("heads: name at least one head to train")
    for i, head in enumerate(cfg.heads):
        if head.late is not None:
            continue
        try:
            cls = catalog.get("head", head.model)
        except ValueError as e:
            raise ConfigError(f"heads[{i}].model: {e}") from None
        bad = sorted(set(head.params) - set(cls().get_params(deep=False)))
        if bad:
            raise ConfigError(f"heads[{i}].params.{bad[0]}: unknown parameter of {cls.__name__}")
    return [head.model_copy(update={"name": head.name or f"{head.model or 'late'}{i}"})
            for i, head in enumerate(cfg.heads)]
