"""The one fit-and-score path of ``featurepipe train``, ``bench`` and ``evaluate``.

A head is fitted on stored features: the training rows (with their augmented copies) are read from
the store, normalised and searched over the head's grid on validation splits of the training split
(``selection.py``); the chosen setting is refit on the whole training split and the test rows are
scored once, for it. The result -- model, normalisation and a record of every score -- is kept in the
store's ``heads`` namespace, so a re-run fits nothing that did not change.
"""
from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from .core import REGISTRY, iter_stages, restore_state, stage_state
from .files import read_npz, write_npz_atomic
from .fingerprint import defining_modules, modules_code_version, to_json
from .matrix import Segment, build_matrix, fit_normalization, iter_blocks
from .metrics import score_predictions
from .normalize import Normalization
from .selection import at_edge, choose, data_stats, expand_grid, extend_grid, is_grid, make_splits, normalization_options
from .store import OK, FeatureStore


#: How many times an ``auto`` grid is extended when the chosen value lies at its edge (two values each time).
MAX_EXTENSIONS = 2


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
    """A fitted head, its normalisation, and the record of its selection and scores."""

    model: object
    normalization: Normalization
    record: dict


def head_key(data: TrainingData, spec: dict, settings: dict) -> str:
    """The store key of a head fitted by ``fit_and_score`` (progress bars do not change it)."""
    params = {k: v for k, v in spec.get("params", {}).items() if k != "verbose"}
    code = head_code_version(spec["model"], params, normalization_options(spec.get("normalize") or settings["normalize"]))
    return FeatureStore.key("heads", features=data.key, augment=list(data.augment),
                            head={**spec, "params": params, "name": None}, train=settings, code=code)


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


def fit_and_score(data: TrainingData, spec: dict, settings: dict, *, verbose: bool = False, log=None) -> HeadResult:
    """Fit, select, refit and score the head ``spec`` (``{"model", "params", "normalize", "name"}``) on
    ``data`` with the training ``settings`` (``TrainConfig`` as a dict); reuse the stored result if any.
    ``log(split, n_splits, normalize, params, validation_accuracy)`` is called after each grid point."""
    key = head_key(data, spec, settings)
    stored = load_head(data.store, key)
    if stored is not None:
        return stored
    import featurepipe.heads  # noqa: F401  (registers the heads)

    head_class = REGISTRY.get("head", spec["model"])
    params = dict(spec.get("params") or {})
    params.setdefault("verbose", verbose)
    y_train = data.labels[data.train_rows]
    method, splits = make_splits(y_train, settings["selection"], settings["validation_fraction"], settings["folds"],
                                 settings["seed"])
    keep_for_refit = method == "holdout" and settings["refit"]
    options = normalization_options(spec.get("normalize") or settings["normalize"])
    start = time.perf_counter()
    grids, scores, todo, kept = {}, {}, {n: None for n in range(len(options))}, None
    for extension in range(1 + MAX_EXTENSIONS):
        kept = _search(data, head_class, params, splits, options, grids, todo, scores, keep_for_refit, log, kept)
        results = [{"normalize": options[n], "params": _plain(dict(point)), "val_accuracy": float(np.mean(accs)),
                    "val_folds": accs} for (n, point), accs in scores.items()]
        best = choose(results)
        n_best = options.index(best["normalize"])
        edges = at_edge([r for r in results if r["normalize"] == best["normalize"]], best, grids[n_best][1])
        if not edges or extension == MAX_EXTENSIONS:
            break
        todo = {n_best: extend_grid(grids[n_best][0], best["params"], edges)}  # beyond the edge, for the best option
        grids[n_best][0].extend(todo[n_best])
    search_seconds = time.perf_counter() - start
    model, normalization, train_score, fit_seconds, peak = _refit(
        data, head_class, params, best, options[n_best], splits, settings,
        kept if kept is not None and kept.option == n_best and _frozen(best["params"]) in kept.models else None)
    test_score = score_rows(data.store, data.key, data.test_rows, data.labels[data.test_rows], model, normalization,
                            data.classes)
    record = {
        "head": spec.get("name"), "model": head_class.__name__, "feature_key": data.key, "augment_keys": list(data.augment),
        "feature_dim": int(data.store.dimension(data.key)), "input_dim": int(model.n_features_in_),
        "selection": {"method": method, "splits": len(splits), "validation_fraction": settings["validation_fraction"],
                      "folds": settings["folds"], "refit": settings["refit"]},
        "grid": results, "chosen": {"normalize": best["normalize"], "params": best["params"]},
        "at_edge": edges, "search_seconds": search_seconds,
        "fit_seconds": fit_seconds, "peak_fit_mib": peak / 2**20, "epochs": int(model.n_iter_),
        "history": model.history_, "train": train_score,
        "val": {"accuracy": best["val_accuracy"], "n": int(sum(len(s.val) for s in splits))},
        "test": test_score, "classes": data.classes, "image_shape": data.store.attrs(data.key).get("image_shape"),
    }
    return save_head(data.store, key, HeadResult(model, normalization, to_json(record)))


@dataclass
class _Kept:
    """A holdout search's matrix -- [fit rows, their copies, validation rows, their copies] -- with its
    normalisation, labels, the number of fit rows (with copies) and the grid's (model, preconditioner) pairs."""

    option: int
    normalization: Normalization
    matrix: np.ndarray
    y: np.ndarray
    n_fit: int
    models: dict


def _search(data, head_class, params, splits, options, grids, todo, scores, keep_for_refit, log, previous=None):
    """Fit the grid points ``todo[option]`` (None: the option's whole grid, expanded on the first split's
    fit rows) on every split and add their validation accuracies to ``scores``; returns the last matrix
    built when a holdout refit may reuse it. ``previous``, the matrix an earlier round of a holdout search
    kept, serves again when it has the option asked (a grid extension): same rows, same normalisation."""
    kept = None
    for s, split in enumerate(splits):
        for n, points in todo.items():
            option = options[n]
            if previous is not None and previous.option == n:
                kept, previous = previous, None
                normalization, matrix, n_fit = kept.normalization, kept.matrix, kept.n_fit
                y_fit, y_val = kept.y[:n_fit], kept.y[n_fit:]
            else:
                kept = None  # one matrix at a time
                fit_segments, y_fit = data.segments(split.fit, augmented=True)
                val_segments, y_val = data.segments(split.val, augmented=keep_for_refit)
                normalization = fit_normalization(data.store, fit_segments, Normalization.from_spec(option))
                matrix = build_matrix(data.store, fit_segments + val_segments, normalization)
                if keep_for_refit:
                    kept = _Kept(n, normalization, matrix, np.concatenate([y_fit, y_val]), len(y_fit), {})
            X_fit, X_val = matrix[:len(y_fit)], matrix[len(y_fit):len(y_fit) + len(split.val)]
            if n not in grids:
                grids[n] = expand_grid(head_class, params, data_stats(X_fit))
            for point, model, preconditioner in _fit_grid(head_class, grids[n][0] if points is None else points,
                                                          X_fit, y_fit):
                accuracy = float(np.mean(model.predict(X_val) == y_val[:len(split.val)]))
                scores.setdefault((n, _frozen(point)), []).append(accuracy)
                if kept is not None:
                    kept.models[_frozen(point)] = (model, preconditioner)
                if log is not None:
                    log(s, len(splits), option, _plain(point), accuracy)
            del matrix, X_fit, X_val
    return kept


def _refit(data, head_class, params, best, option, splits, settings, kept):
    """The final model -- the chosen setting refit on every training row, or with ``refit: false`` fitted on
    the first split's fit rows -- with its scores on the original training rows it saw, fit seconds and
    peak traced memory. A holdout search's matrix is reused when it has the chosen normalisation, and an
    L-BFGS refit starts from the search's solution, with its preconditioner."""
    model = head_class(**{**params, **best["params"]})
    if kept is not None:
        split = splits[0]
        init, preconditioner = kept.models[_frozen(best["params"])]
        if getattr(init, "optimizer", None) != "lbfgs":
            init = None
        if getattr(preconditioner, "row_space", None) is not None:
            preconditioner = None  # it is the search's fit rows' row space, not that of every training row
        model, seconds, peak = _timed_fit(model, kept.matrix, kept.y, init=init, preconditioner=preconditioner)
        # The original rows are two slices (views): a fancy index would copy them, 6.4 GB at CIFAR-10's 32,000-d.
        originals = [slice(0, len(split.fit)), slice(kept.n_fit, kept.n_fit + len(split.val))]
        scored = score_predictions(np.concatenate([kept.y[rows] for rows in originals]),
                                   np.concatenate([model.predict(kept.matrix[rows]) for rows in originals]),
                                   data.classes)
        return model, kept.normalization, scored, seconds, peak
    positions = np.arange(len(data.train_rows)) if settings["refit"] else splits[0].fit
    segments, y = data.segments(positions, augmented=True)
    normalization = fit_normalization(data.store, segments, Normalization.from_spec(option))
    matrix = build_matrix(data.store, segments, normalization)
    model, seconds, peak = _timed_fit(model, matrix, y)
    originals = len(positions)
    scored = score_predictions(y[:originals], model.predict(matrix[:originals]), data.classes)
    return model, normalization, scored, seconds, peak


def _timed_fit(model, X, y, init=None, preconditioner=None):
    """Fit ``model``; also returns its seconds and the peak memory it allocated (tracemalloc, bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    model.fit(X, y, init=init, preconditioner=preconditioner)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return model, seconds, peak


def _fit_grid(head_class, points: list[dict], X, y):
    """``(point, fitted model, preconditioner or None)`` for every grid point: points that differ only in
    ``alpha`` go through the head's regularisation path when it has one (sharing one preconditioner), the
    others are fitted one by one."""
    if hasattr(head_class, "regularization_path") and all("alpha" in p for p in points):
        groups: dict = {}
        for point in points:
            groups.setdefault(_frozen({k: v for k, v in point.items() if k != "alpha"}), []).append(point)
        for group in groups.values():
            head, alphas = head_class(**group[0]), [p["alpha"] for p in group]
            preconditioner = head.path_preconditioner(X, y, alphas)
            for point, model in zip(group, head.regularization_path(X, y, alphas, preconditioner=preconditioner)):
                yield point, model, preconditioner
        return
    for point in points:
        yield point, head_class(**point).fit(X, y), None


def predict_rows(store, key, rows, model, normalization) -> np.ndarray:
    """Labels ``model`` gives rows ``rows`` of entry ``key``, read and normalised a block at a time."""
    predicted = np.empty(len(rows), dtype=np.asarray(model.classes_).dtype)
    for positions, block in iter_blocks(store, key, rows) if len(rows) else []:
        predicted[positions] = model.predict(normalization.transform(block))
    return predicted


def score_rows(store, key, rows, labels, model, normalization, classes) -> dict:
    """Scores of ``model`` on rows ``rows`` of entry ``key`` (see ``predict_rows``)."""
    return score_predictions(labels, predict_rows(store, key, rows, model, normalization), classes)


def _frozen(point: dict) -> tuple:
    """A grid point as a hashable key (``verbose`` does not make a point)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in point.items() if k != "verbose"))


def _plain(point: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in point.items() if k != "verbose"}


# -- storage in the store's ``heads`` namespace ----------------------------------------------------------
def save_head(store: FeatureStore, key: str, result: HeadResult) -> HeadResult:
    """Keep ``result`` under ``key``: the head's arrays, the normalisation's state and the record."""
    from .heads import save_model

    arrays, values = stage_state(result.normalization)
    record = {**result.record, "normalization": {"spec": result.record["chosen"]["normalize"], "values": values},
              "parents": [result.record["feature_key"], *result.record["augment_keys"]],
              "what": f"{result.record['head']}: {result.record['model']} on {result.record['feature_key'][:8]}, "
                      f"test {result.record['test']['accuracy']:.1%}"}

    def write(folder):
        save_model(result.model, folder / "head.npz")
        write_npz_atomic(folder / "normalization.npz", arrays)

    store.save_head(key, record, write)
    return HeadResult(result.model, result.normalization, record)


def load_head(store: FeatureStore, key: str) -> HeadResult | None:
    found = store.load_head(key)
    if found is None:
        return None
    from .heads import load_model

    record, folder = found
    normalization = Normalization.from_spec(record["normalization"]["spec"])
    restore_state(normalization, read_npz(folder / "normalization.npz"), record["normalization"]["values"], None,
                  f"head {key}")
    return HeadResult(load_model(folder / "head.npz"), normalization, record)
