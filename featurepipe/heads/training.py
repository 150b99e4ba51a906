"""Training loops: mini-batch epochs with early stopping for first-order optimisers, and a single
full-batch call for L-BFGS. Both record a per-epoch history and refuse to return a NaN model; with
``verbose`` they show a progress bar over the epochs (iterations) with the loss and accuracies."""
import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .objective import evaluate_together


class DivergenceError(ValueError):
    """Training produced a loss that is not finite, so the model would be garbage."""


@dataclass
class TrainingResult:
    """What a training loop reports besides the parameters it updated in place.

    ``history`` holds, per epoch (per iteration for L-BFGS), the training objective (``"loss"``),
    the training accuracy (``"train_accuracy"``, on the mini-batches as they were seen) and, when
    there is a validation split, the validation accuracy (``"val_accuracy"``).
    """

    n_iter: int
    converged: bool
    message: str = ""  # why a full-batch optimiser stopped, when it did not converge
    history: dict = field(
        default_factory=lambda: {"loss": [], "train_accuracy": [], "val_accuracy": []}
    )


def train_minibatch(
    objective,
    params,
    X,
    y,
    *,
    optimizer,
    schedule,
    batch_size,
    max_epochs,
    tol,
    n_iter_no_change,
    shuffle,
    rng,
    weights=None,
    validation=None,
    verbose=False,
):
    """Train ``params`` in place with ``optimizer`` on mini-batches of ``(X, y)``, its rows weighted by
    ``weights`` (scaled to mean 1; None: all 1), from a fresh optimiser state and the schedule's start.

    Training stops when the monitored quantity has not improved by ``tol`` for
    ``n_iter_no_change`` epochs in a row: the accuracy on ``validation = (X_val, y_val)`` when it
    is given, and then the parameters of the best epoch are kept; the training loss otherwise. A training
    loss that stopped improving because it bounces well above its best (``_bouncing``: steps too long for
    the curvature, as Adam's fixed-size steps against a strong L2 penalty) is not a converged fit: the
    learning rate is cut tenfold (down to ``MIN_LR_FACTOR``) and training goes on.
    """
    order = np.arange(X.shape[0])
    state = optimizer.init_state(params)
    result = TrainingResult(n_iter=0, converged=False)
    history = result.history
    best, best_params, epochs_without_improvement = -np.inf, None, 0
    bar = _progress_bar(max_epochs, "epoch", verbose)
    factor = 1.0  # the learning-rate cut after a bouncing plateau

    for epoch in range(max_epochs):
        scaled = schedule if factor == 1.0 else (lambda t, f=factor: f * schedule(t))
        loss, accuracy = run_epoch(objective, params, X, y, optimizer=optimizer, state=state, schedule=scaled,
                                   epoch=epoch, batch_size=batch_size, order=order, shuffle=shuffle, rng=rng,
                                   weights=weights)
        result.n_iter = epoch + 1
        history["loss"].append(loss)
        history["train_accuracy"].append(accuracy)
        if validation is None:
            monitored = -history["loss"][-1]
        else:
            X_val, y_val = validation
            val_scores, _ = objective.network.forward(params, X_val)
            history["val_accuracy"].append(_n_correct(val_scores, y_val) / len(y_val))
            monitored = history["val_accuracy"][-1]
        _advance(bar, history)

        epochs_without_improvement = 0 if monitored >= best + tol else epochs_without_improvement + 1
        if monitored > best:
            best = monitored
            if validation is not None:
                best_params = [param.copy() for param in params]
        if epochs_without_improvement >= n_iter_no_change:
            if validation is None and factor > MIN_LR_FACTOR and _bouncing(history["loss"][-n_iter_no_change:], -best):
                factor, epochs_without_improvement = factor / 10, 0
                continue
            break
    bar.close()

    # Running the full course of a schedule that anneals the learning rate to zero also converges.
    result.converged = epochs_without_improvement >= n_iter_no_change or schedule(max_epochs) == 0

    if best_params is not None:
        for param, kept in zip(params, best_params):
            param[...] = kept
    return result


#: The smallest fraction of the scheduled learning rate that a bouncing training loss cuts it to (three cuts).
MIN_LR_FACTOR = 1e-3


def _bouncing(window, best_loss) -> bool:
    """Whether the training losses of a plateau's ``window`` of epochs lie well above the best loss so far (their
    mean over it by more than a tenth; mini-batch noise near a minimum moves an epoch's loss by a few percent):
    the steps overshoot, the fit has not converged."""
    return float(np.mean(window)) > best_loss + 0.1 * abs(best_loss)


def run_epoch(objective, params, X, y, *, optimizer, state, schedule, epoch, batch_size, order, shuffle, rng,
              weights=None):
    """One epoch of mini-batch steps on ``params`` (in place) from optimiser ``state`` (advanced in place), the
    learning rate scaled by ``schedule`` from ``epoch`` on, the rows taken in ``order`` (shuffled in place
    first with ``shuffle``); the epoch's mean loss and training accuracy.

    A batch's loss is the mean of its rows' ``w_i L_i``, the weights scaled to mean 1 over the whole set
    (``weights.py``), not divided by the batch's own weight sum: the batch is a uniform sample of rows, so
    the expected batch loss (and gradient) is the full objective's ``sum_i w_i L_i / sum_i w_i``. Dividing by
    each batch's weight sum would be a ratio of two estimates, biased towards the rows of light batches, and
    undefined for a batch whose weights are all zero.
    """
    n_samples = X.shape[0]
    n_batches = math.ceil(n_samples / batch_size)
    if shuffle:
        rng.shuffle(order)
    loss_sum, n_correct = 0.0, 0
    for batch in range(n_batches):
        rows = order[batch * batch_size : (batch + 1) * batch_size]
        y_batch = y[rows]
        value, grads, scores = objective(params, X[rows], y_batch, rng, None if weights is None else weights[rows])
        if not np.isfinite(value):
            raise DivergenceError(
                f"training diverged: the loss became {value} at epoch {epoch + 1}, batch "
                f"{batch + 1}; lower the learning rate, add warm-up or standardise the features"
            )
        optimizer.step(params, grads, state, lr_scale=schedule(epoch + batch / n_batches))
        loss_sum += float(value) * len(rows)
        n_correct += _n_correct(scores, y_batch)
    return loss_sum / n_samples, n_correct / n_samples


def train_full_batch(objective, params, X, y, *, optimizer, max_iter, tol, preconditioner=None, weights=None,
                     verbose=False):
    """Train ``params`` in place with a full-batch optimiser (L-BFGS) on all of ``(X, y)``, its rows weighted by
    ``weights`` (scaled to mean 1; None: all 1), in the variables of ``preconditioner`` when one is given."""
    return train_full_batch_together([objective], [params], X, y, optimizer=optimizer, max_iter=max_iter, tol=tol,
                                     preconditioners=[preconditioner], weights_list=[weights], verbose=verbose)[0]


def train_full_batch_together(objectives, params_list, X, y, *, optimizer, max_iter, tol, preconditioners=None,
                              weights_list=None, verbose=False):
    """``train_full_batch`` for several objectives on the same ``(X, y)`` at once (a grid of penalties, say),
    each with its rows' weights (``weights_list``: None each by default): one L-BFGS run each, evaluated
    together (``evaluate_together``, ``LBFGS.minimize_together``)."""
    weights_list = weights_list or [None] * len(objectives)
    n = len(objectives)
    results = [TrainingResult(n_iter=0, converged=False) for _ in range(n)]
    last_accuracy = [None] * n
    bars = [_progress_bar(max_iter, "iteration", verbose, position=i if n > 1 else None) for i in range(n)]

    def value_and_grads(problems, params_subset):
        evaluated = evaluate_together([objectives[i] for i in problems], params_subset, X, y,
                                      [weights_list[i] for i in problems])
        for i, (_, _, scores) in zip(problems, evaluated):
            last_accuracy[i] = _n_correct(scores, y) / len(y)
        return [(value, grads) for value, grads, _ in evaluated]

    def on_iteration(i, value):
        # L-BFGS-B evaluates the accepted point last, so the cached accuracy belongs to it.
        history = results[i].history
        history["loss"].append(float(value))
        history["train_accuracy"].append(last_accuracy[i])
        _advance(bars[i], history)

    outcomes = optimizer.minimize_together(value_and_grads, params_list, max_iter=max_iter, tol=tol,
                                           callbacks=[partial(on_iteration, i) for i in range(n)],
                                           preconditioners=preconditioners)
    for bar in bars:
        bar.close()
    for result, outcome, params in zip(results, outcomes, params_list):
        if not (np.isfinite(outcome.fun) and all(np.isfinite(param).all() for param in params)):
            raise DivergenceError(f"L-BFGS diverged: the loss is {outcome.fun}; standardise the features")
        result.n_iter = outcome.nit
        result.converged = bool(outcome.success) or outcome.stalled
        result.message = "" if result.converged else str(outcome.message)
    return results


def _n_correct(scores, y):
    return int(np.count_nonzero(scores.argmax(axis=1) == y))


def _progress_bar(total, unit, verbose, position=None):
    """A tqdm bar over ``total`` epochs on stderr (on line ``position`` when several run at once), or a silent
    one when not ``verbose``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc="train", disable=not verbose, leave=True, position=position)


def _advance(bar, history):
    """One more epoch on ``bar``, with the latest loss and accuracies as its postfix."""
    if bar.disable:
        return
    postfix = {"loss": f"{history['loss'][-1]:.4f}", "train_acc": f"{history['train_accuracy'][-1]:.4f}"}
    if history["val_accuracy"]:
        postfix["val_acc"] = f"{history['val_accuracy'][-1]:.4f}"
    bar.set_postfix(postfix, refresh=False)
    bar.update()
