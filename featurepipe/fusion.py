"""Late fusion: one head from the scores of several heads the run trains (its members), each on its own
features.

The members' scores are made comparable as log-probabilities -- a softmax head's own, a hinge-loss head's
Platt-scaled ones (``calibration.probabilities``) -- and the fused head's are their weighted mean,
renormalised (a weighted geometric mean of the members' probabilities). The weights, one per member,
non-negative and summing to 1, are the point of a simplex grid (steps of ``WEIGHT_STEP``) with the lowest
log loss on the members' out-of-fold rows: the validation rows of their searches, which each member scored
without having been fitted on them (``calibration.OutOfFold``). So the weights are chosen by
cross-validation on the training split; the test rows are scored once, for the chosen weights, by the
members refit on every training row. The fusion is kept in the store's ``heads`` namespace, keyed by its
members' keys and this code: a changed member never serves a stale fusion.
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .calibration import probabilities
from .config import ConfigError
from .fingerprint import modules_code_version, to_json
from .fitting import HeadResult, TrainingData, load_head
from .matrix import iter_blocks
from .metrics import ece, score_predictions
from .store import DamagedEntryError, FeatureStore

#: The weight grid's resolution: every member's weight is a multiple of it.
WEIGHT_STEP = 0.1
#: The most members one fusion takes: the grid has ``C(10 + m - 1, m - 1)`` points (1,001 for 5 members).
MAX_MEMBERS = 5


@dataclass
class Member:
    """A head fused: its name (a pipeline's in the bench, a head's in ``train``), its store key and the rows
    of the features it was fitted on."""

    name: str
    key: str
    data: TrainingData


@dataclass
class FusedResult:
    """The members' fitted heads (in the members' order), their weights, the fusion's record and whether it
    came from the store."""

    members: list[HeadResult]
    weights: np.ndarray
    record: dict
    cached: bool = False


def weight_grid(n_members: int) -> np.ndarray:
    """Every weighting of ``n_members`` members by non-negative multiples of ``WEIGHT_STEP`` summing to 1,
    ``(points, n_members)``; the first member's weight rises first (``[0, ..., 1]`` comes first)."""
    units = round(1 / WEIGHT_STEP)
    points = [p for p in itertools.product(range(units + 1), repeat=n_members - 1) if sum(p) <= units]
    return np.array([[*p, units - sum(p)] for p in points], np.float64) / units


def fused_log_proba(log_probas: np.ndarray, weights) -> np.ndarray:
    """The fused log-probabilities ``(n, n_classes)`` of the members' ``log_probas`` ``(members, n, n_classes)``
    weighted by ``weights``: their weighted sum, renormalised."""
    scores = np.tensordot(np.asarray(weights, np.float64), log_probas, axes=1)
    return scores - logsumexp(scores, axis=1, keepdims=True)


def log_probabilities(decision, calibration=None) -> np.ndarray:
    """A head's log-probabilities from its decision values (``calibration.probabilities``), a probability
    that underflowed to 0 at the smallest positive double's log rather than minus infinity."""
    return np.log(np.maximum(probabilities(decision, calibration), np.finfo(np.float64).tiny))


def choose_weights(log_probas: np.ndarray, truth: np.ndarray) -> tuple[int, list[dict]]:
    """The index of the weighting of ``weight_grid`` whose fused log loss on rows of true class indices
    ``truth`` is lowest (ties: the first), and every weighting tried with its log loss and accuracy. Log loss,
    not accuracy: accuracy moves by whole rows, and on a few hundred rows a weight on a member that is noise
    can gain one by chance; the log loss of the probabilities only improves for a member that informs."""
    rows = np.arange(len(truth))
    tried = []
    for weights in weight_grid(len(log_probas)):
        fused = fused_log_proba(log_probas, weights)
        tried.append({"weights": [round(float(w), 6) for w in weights], "log_loss": float(-fused[rows, truth].mean()),
                      "accuracy": float(np.mean(fused.argmax(axis=1) == truth))})
    return min(range(len(tried)), key=lambda i: tried[i]["log_loss"]), tried


def member_log_proba(head, store, key: str, rows) -> np.ndarray:
    """Log-probabilities ``(len(rows), n_classes)`` of a fitted ``head`` (a ``fitting.HeadResult`` or a
    ``trained.Trained``: model, normalisation, calibration) on rows ``rows`` of entry ``key``."""
    out = np.empty((len(rows), len(head.model.classes_)))
    for positions, block in iter_blocks(store, key, rows) if len(rows) else []:
        out[positions] = log_probabilities(head.model.decision_function(head.normalization.transform(block)),
                                           head.calibration)
    return out


def fused_log_proba_of(heads, datas, rows, weights) -> np.ndarray:
    """The fused log-probabilities (``fused_log_proba``) of fitted ``heads`` (see ``member_log_proba``) on rows
    ``rows`` of their feature entries (``datas``: each head's ``fitting.TrainingData``)."""
    return fused_log_proba(np.stack([member_log_proba(head, data.store, data.key, rows)
                                     for head, data in zip(heads, datas)]), weights)


def fused_test_answers(heads, datas, weights) -> dict[str, bool]:
    """Whether the fusion of ``heads`` weighted by ``weights`` labels each test image of their data sets
    (``datas``, whose test images are the same) correctly, by image id (``compare.test_answers``'s form)."""
    data = datas[0]
    rows = data.test_rows
    classes = np.asarray(heads[0].model.classes_)
    predicted = classes[fused_log_proba_of(heads, datas, rows, weights).argmax(axis=1)] if len(rows) else classes[:0]
    ids = data.store.items(data.key)["ids"]
    return dict(zip((ids[r] for r in rows), (predicted.astype(str) == data.labels[rows].astype(str)).tolist()))


def class_index(classes, labels) -> np.ndarray:
    """The column of each label among a head's ``classes``; -1 for a label the heads never saw (never right)."""
    classes = np.asarray(classes).astype(str)
    labels = np.asarray(labels).astype(str)
    found = np.minimum(np.searchsorted(classes, labels), len(classes) - 1)
    return np.where(classes[found] == labels, found, -1)


def fused_scores(log_proba: np.ndarray, labels, head_classes, classes) -> dict:
    """``metrics.score_predictions`` of fused log-probabilities on rows labelled ``labels`` (columns in
    ``head_classes`` order; ``classes``: the data set's), with the calibration error of their probabilities."""
    predicted = np.asarray(head_classes)[log_proba.argmax(axis=1)] if len(labels) else np.asarray(head_classes)[:0]
    scores = score_predictions(labels, predicted, classes)
    if len(labels):
        scores["ece"] = ece(class_index(head_classes, labels), np.exp(log_proba))
    return scores


def fusion_key(members: list[Member]) -> str:
    """The store key of the fusion of ``members``: their heads' keys, in order, the weight grid and this code."""
    return FeatureStore.key("heads", late=[m.key for m in members], step=WEIGHT_STEP,
                            code=modules_code_version((__name__,)))


def fit_fusion(name: str, members: list[Member]) -> FusedResult:
    """Fuse the heads of ``members`` (fitted by ``fitting.fit_and_score`` already, read back from the store):
    weights chosen on their out-of-fold rows, test scored once (see the module); reuse the stored fusion if
    any. ``ConfigError`` (one line) when the members were not fitted on the same rows."""
    heads = [load_head(m.data.store, m.key) for m in members]
    _check_members(name, members, heads)
    store, key = members[0].data.store, fusion_key(members)
    stored = _cached_record(store, key)
    if stored is not None:
        return FusedResult(heads, np.array(stored["chosen"]["params"]["weights"]), {**stored, "head": name}, True)
    start = time.perf_counter()
    oof = heads[0].out_of_fold
    head_classes = heads[0].model.classes_
    data = members[0].data
    log_probas = np.stack([log_probabilities(h.out_of_fold.decision, h.calibration) for h in heads])
    best, tried = choose_weights(log_probas, class_index(head_classes, data.labels[oof.rows]))
    weights = np.array(tried[best]["weights"])
    seconds = time.perf_counter() - start

    def scored(rows):
        fused = fused_log_proba_of(heads, [m.data for m in members], rows, weights)
        return fused_scores(fused, data.labels[rows], head_classes, data.classes)

    records = [h.record for h in heads]
    record = {
        "head": name, "model": "LateFusion", "members": [{"name": m.name, "head_key": m.key} for m in members],
        "feature_key": data.key, "augment_keys": [],
        "feature_dim": sum(r["feature_dim"] for r in records), "input_dim": sum(r["input_dim"] for r in records),
        "selection": records[0]["selection"],
        "grid": [{"normalize": None, "params": {"weights": t["weights"]}, "val_accuracy": t["accuracy"],
                  "val_log_loss": t["log_loss"]} for t in tried],
        "chosen": {"normalize": None, "params": {"weights": tried[best]["weights"]}}, "at_edge": [],
        "search_seconds": seconds, "solvers": [], "fit_seconds": 0.0, "peak_fit_mib": 0.0, "epochs": 0,
        "history": {}, "train": scored(data.train_rows),
        "val": {"accuracy": tried[best]["accuracy"], "log_loss": tried[best]["log_loss"], "n": len(oof.rows)},
        "test": scored(data.test_rows), "classes": data.classes, "image_shape": None,
    }
    record = to_json(record)
    store.save_head(key, {"record": record, "parents": [m.key for m in members],
                          "what": f"{name}: late fusion of {', '.join(m.name for m in members)}, "
                                  f"test {record['test']['accuracy']:.1%}"}, lambda folder: None)
    return FusedResult(heads, weights, record)


def _check_members(name: str, members: list[Member], heads: list[HeadResult | None]) -> None:
    """Refuse members that cannot be fused: not in the store, without out-of-fold scores, or fitted on other
    rows or classes than the first member."""
    for member, head in zip(members, heads):
        if head is None or head.out_of_fold is None:
            raise ConfigError(f"late fusion {name}: member {member.name!r} has no stored head with out-of-fold "
                              f"scores (fit it with this featurepipe first)")
    first, head = members[0], heads[0]
    ids = list(first.data.store.items(first.data.key)["ids"])
    for member, other in zip(members[1:], heads[1:]):
        same = (np.array_equal(other.out_of_fold.rows, head.out_of_fold.rows)
                and np.array_equal(member.data.test_rows, first.data.test_rows)
                and list(member.data.store.items(member.data.key)["ids"]) == ids
                and list(map(str, other.model.classes_)) == list(map(str, head.model.classes_)))
        if not same:
            raise ConfigError(f"late fusion {name}: members {first.name!r} and {member.name!r} were not fitted and "
                              f"validated on the same images; fuse heads of one data set with the same train settings "
                              f"(selection, folds, seed)")


def _cached_record(store: FeatureStore, key: str) -> dict | None:
    """The record of the fusion stored under ``key``; a damaged entry is removed, with one line saying so."""
    try:
        found = store.load_head(key)
    except DamagedEntryError as e:
        print(f"featurepipe: cached fusion {key}: {e}; choosing its weights again", file=sys.stderr, flush=True)
        store.remove(key)
        return None
    return None if found is None else found[0]["record"]
