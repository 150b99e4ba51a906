"""Optimisers, kept apart from the models so that any head trains with any of them.

First-order optimisers update a list of parameter arrays in place from mini-batch gradients::

    state = optimizer.init_state(params)
    optimizer.step(params, grads, state, lr_scale=schedule(epoch))

Settings live on the optimiser and per-run state in ``state``, so one optimiser object can train
many models without being changed, as scikit-learn requires of an estimator's parameters.

Every first-order optimiser applies *decoupled* weight decay (Loshchilov and Hutter, 2019) to weight
matrices, never to biases: ``W -= lr * weight_decay * W`` next to the gradient step, rather than a
penalty folded into the gradient. ``"adamw"`` is Adam with it switched on by default.

L-BFGS is full-batch and hands the whole objective to ``scipy.optimize.minimize``; ``minimize_together``
runs several such fits (a grid of penalties) evaluated in shared rounds.
Each is registered (kind ``"optimizer"``), some names with preset settings (``"momentum"`` is SGD with
momentum 0.9); ``create_optimizer`` builds any of them by name, in the manner of timm's factory.
"""
import threading
from functools import partial

import numpy as np

from ..core import REGISTRY, Boolean, Integer, Real, register, require
from ._hyperparameters import Hyperparameters
from .preconditioning import Preconditioner
from .regularization import is_weight

_RATE = {"learning_rate": Real(0, low_open=True, message="must be positive"),
         "weight_decay": Real(0, message="must be non-negative")}
_FRACTION = Real(0, 1, high_open=True)
_EPSILON = Real(0, low_open=True, message="must be positive")


class OptimizerState:
    """The step count and one tuple of buffers (momentum, squared-gradient averages) per parameter."""

    def __init__(self, buffers):
        self.steps = 0
        self.buffers = buffers


class Optimizer(Hyperparameters):
    """Base of the first-order optimisers; subclasses implement ``_update`` for one parameter."""

    full_batch = False
    #: Names of the per-parameter buffers ``_update`` receives, in order.
    buffer_names = ()

    def __init__(self, learning_rate, weight_decay):
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay

    def init_state(self, params):
        """Fresh state for training ``params``."""
        return OptimizerState(
            [tuple(np.zeros_like(param) for _ in self.buffer_names) for param in params]
        )

    def step(self, params, grads, state, lr_scale=1.0):
        """Update ``params`` in place; ``lr_scale`` multiplies the learning rate (for schedules)."""
        state.steps += 1
        lr = self.learning_rate * lr_scale
        for param, grad, buffers in zip(params, grads, state.buffers):
            if self.weight_decay and is_weight(param):
                param *= 1 - lr * self.weight_decay
            self._update(param, grad, buffers, lr, state.steps)

    def _update(self, param, grad, buffers, lr, steps):
        raise NotImplementedError


@register("optimizer", "sgd")
@register("optimizer", "momentum", momentum=0.9)
@register("optimizer", "nesterov", momentum=0.9, nesterov=True)
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with classical or Nesterov momentum.

    With momentum ``mu``: ``v <- mu v - lr g``, then ``p <- p + v`` (classical) or
    ``p <- p + mu v - lr g`` (Nesterov, in the form of Sutskever et al., 2013).
    """

    buffer_names = ("velocity",)
    _constraints = {**_RATE, "momentum": _FRACTION, "nesterov": Boolean()}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = momentum
        self.nesterov = nesterov
        self.validate_params()

    def _check_combination(self):
        require(not self.nesterov or self.momentum > 0, "nesterov", "needs a momentum above 0", self.nesterov)

    def _update(self, param, grad, buffers, lr, steps):
        if not self.momentum:
            param -= lr * grad
            return
        (velocity,) = buffers
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            param += self.momentum * velocity - lr * grad
        else:
            param += velocity


@register("optimizer", "adagrad")
class AdaGrad(Optimizer):
    """Per-coordinate steps shrinking with the sum of squared gradients (Duchi et al., 2011).

    ``G <- G + g^2``, ``p <- p - lr g / (sqrt(G) + epsilon)``.
    """

    buffer_names = ("sum_sq",)
    _constraints = {**_RATE, "epsilon": _EPSILON}

    def __init__(self, learning_rate=0.01, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.epsilon = epsilon
        self.validate_params()

    def _update(self, param, grad, buffers, lr, steps):
        (sum_sq,) = buffers
        sum_sq += grad * grad
        param -= lr * grad / (np.sqrt(sum_sq) + self.epsilon)


@register("optimizer", "rmsprop")
class RMSProp(Optimizer):
    """AdaGrad with a moving average of squared gradients instead of their sum (Hinton, 2012).

    ``E <- rho E + (1 - rho) g^2``, ``p <- p - lr g / (sqrt(E) + epsilon)``.
    """

    buffer_names = ("mean_sq",)
    _constraints = {**_RATE, "rho": _FRACTION, "epsilon": _EPSILON}

    def __init__(self, learning_rate=1e-3, rho=0.9, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.rho = rho
        self.epsilon = epsilon
        self.validate_params()

    def _update(self, param, grad, buffers, lr, steps):
        (mean_sq,) = buffers
        mean_sq *= self.rho
        mean_sq += (1 - self.rho) * grad * grad
        param -= lr * grad / (np.sqrt(mean_sq) + self.epsilon)


@register("optimizer", "adam")
@register("optimizer", "adamw", weight_decay=0.01)
class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias-corrected moment estimates.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr m_hat / (sqrt(v_hat) + epsilon)`` with ``m_hat = m / (1 - b1^t)`` and
    ``v_hat = v / (1 - b2^t)``. With ``weight_decay`` above 0 this is AdamW.
    """

    buffer_names = ("m", "v")
    _constraints = {**_RATE, "beta_1": _FRACTION, "beta_2": _FRACTION, "epsilon": _EPSILON}

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.validate_params()

    def _update(self, param, grad, buffers, lr, steps):
        m, v = buffers
        m *= self.beta_1
        m += (1 - self.beta_1) * grad
        v *= self.beta_2
        v += (1 - self.beta_2) * grad * grad
        m_hat = m / (1 - self.beta_1**steps)
        v_hat = v / (1 - self.beta_2**steps)
        param -= lr * m_hat / (np.sqrt(v_hat) + self.epsilon)


@register("optimizer", "lbfgs")
class LBFGS(Hyperparameters):
    """Full-batch limited-memory BFGS, through ``scipy.optimize.minimize(method="L-BFGS-B")``.

    It needs a deterministic objective over the whole training set, so no mini-batches, dropout,
    schedules or weight decay.
    """

    full_batch = True
    _constraints = {"max_corrections": Integer(1)}

    def __init__(self, max_corrections=10):
        self.max_corrections = max_corrections
        self.validate_params()

    def minimize(self, fun, params, *, max_iter, tol, callback=None, preconditioner=None):
        """Minimise ``fun(params) -> (value, grads)``, updating ``params`` in place.

        ``tol`` bounds the largest gradient component at convergence; ``callback(value)`` is called
        after each iteration. A ``preconditioner`` (see ``preconditioning.py``) changes the
        variables L-BFGS works on. Returns scipy's ``OptimizeResult``, with ``stalled`` set when the fit
        ended where its float32 objective cannot be lowered any further, however small ``tol``: no progress
        over the last iterations (``stalled``, below); a line search whose steps stopped changing the
        objective (then the result is the last accepted point); or, with a preconditioner, a gradient whose
        predicted gain is below the objective's precision (``_gain_below_precision``).
        """
        (result,) = self.minimize_together(lambda problems, params_list: [fun(params_list[0])], [params],
                                           max_iter=max_iter, tol=tol, callbacks=[callback],
                                           preconditioners=[preconditioner])
        return result

    def minimize_together(self, fun, params_list, *, max_iter, tol, callbacks=None, preconditioners=None):
        """Minimise several independent objectives at once, each as ``minimize`` would; returns their results.

        ``fun(problems, params_list) -> [(value, grads), ...]`` evaluates the objectives of the problems
        numbered ``problems`` at their ``params_list``. Every problem is its own L-BFGS run, with its own
        history, line search and stopping rule, in its own thread; they only meet to be evaluated: each round
        gathers the next point of every problem still running and hands them to ``fun`` together. A linear
        head's grid of alphas then reads its matrix once per round for all of them (``evaluate_together``):
        the product of a 45,000 x 8,000 matrix with 60 columns costs 1.4 times one with 10, not 6 times.
        Problems that share a ``preconditioners`` object also change variables together, in one solve.
        """
        n = len(params_list)
        callbacks = callbacks or [None] * n
        preconditioners = [_Identity(params) if p is None else p
                           for p, params in zip(preconditioners or [None] * n, params_list)]

        def evaluate(points):
            problems = [i for i, _ in points]
            _to_params(points, preconditioners, params_list)
            values = fun(problems, [params_list[i] for i in problems])
            gradients = _to_variables([(i, grads) for i, (_, grads) in zip(problems, values)], preconditioners)
            return [(value, gradient) for (value, _), gradient in zip(values, gradients)]

        rendezvous = _Rendezvous(evaluate, n)
        results = [None] * n

        def run(i):
            try:
                results[i] = _minimize_one(partial(rendezvous, i), params_list[i], preconditioners[i],
                                           max_iter=max_iter, tol=tol, callback=callbacks[i],
                                           maxcor=self.max_corrections)
            except BaseException as error:  # noqa: BLE001  (raised below, in the caller's thread)
                rendezvous.abort(error)
            finally:
                rendezvous.leave()

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, n)]
        for thread in threads:
            thread.start()
        run(0)
        try:
            for thread in threads:
                thread.join()
        except BaseException as error:  # an interrupt while the other runs go on: stop them first
            rendezvous.abort(error)
            for thread in threads:
                thread.join()
            raise
        if rendezvous.error is not None:
            raise rendezvous.error
        return results


def _minimize_one(evaluate, params, preconditioner, *, max_iter, tol, callback, maxcor):
    """One L-BFGS run of ``LBFGS.minimize`` on ``evaluate(v) -> (value, gradient)`` in ``preconditioner``'s
    variables ``v``; writes the solution into ``params``."""
    from scipy.optimize import OptimizeResult, minimize

    values, state = [], {"level_trials": 0}

    def flat_fun(x):
        value, gradient = evaluate(x)
        if "eps" not in state:
            state["eps"] = _resolution(value)
        value, gradient = float(value), np.asarray(gradient, np.float64)
        level = bool(values) and abs(value - values[-1]) <= _LEVEL * state["eps"] * abs(values[-1])
        state["level_trials"] = state["level_trials"] + 1 if level else 0
        if state["level_trials"] > _LEVEL_TRIALS:
            raise _LineSearchStalled
        state["last"] = (x.copy(), gradient)
        return value, gradient

    def on_iteration(intermediate_result):
        # L-BFGS-B evaluates the accepted point last, so state["last"] is that point and its gradient.
        values.append(intermediate_result.fun)
        state["accepted"], state["level_trials"] = state["last"], 0
        if callback is not None:
            callback(intermediate_result.fun)
        if stalled(values, state["eps"]):
            raise StopIteration

    try:
        result = minimize(flat_fun, preconditioner.variables(params).astype(np.float64), jac=True,
                          method="L-BFGS-B", callback=on_iteration,
                          options={"maxiter": max_iter, "gtol": tol, "maxcor": maxcor})
        result.stalled = (bool(values) and stalled(values, state["eps"])
                          or not isinstance(preconditioner, _Identity) and _gain_below_precision(result))
    except _LineSearchStalled:
        x, gradient = state["accepted"]
        result = OptimizeResult(x=x, fun=values[-1], jac=gradient, nit=len(values), success=False, stalled=True,
                                message="the line search found no step that changes the objective measurably")
    preconditioner.params(result.x, params)
    return result


class _Abandoned(Exception):
    """Raised in a problem's run when another run or an evaluation failed (that failure is the one
    ``minimize_together`` raises)."""


class _Rendezvous:
    """Where the runs of ``minimize_together`` meet: ``rendezvous(i, v)`` posts problem ``i``'s next point and
    returns its ``(value, gradient)`` once every problem still running has posted one and ``evaluate`` has
    computed them all in one call; ``leave()`` says a problem is done (no more points from it)."""

    def __init__(self, evaluate, n_running):
        self._evaluate = evaluate
        self._running = n_running
        self._points, self._results = {}, {}
        self._round = 0
        self._condition = threading.Condition()
        self.error = None

    def __call__(self, i, point):
        with self._condition:
            if self.error is not None:
                raise _Abandoned
            self._points[i] = point
            round_ = self._round
            if len(self._points) == self._running:
                self._evaluate_round()
            else:
                self._condition.wait_for(lambda: self._round != round_ or self.error is not None)
            if self.error is not None:
                raise _Abandoned
            return self._results.pop(i)

    def abort(self, error):
        """Stop every run at its next point; the first error (not an ``_Abandoned``) is the one kept."""
        with self._condition:
            if self.error is None and not isinstance(error, _Abandoned):
                self.error = error
            self._condition.notify_all()

    def leave(self):
        with self._condition:
            self._running -= 1
            if self._points and len(self._points) == self._running:
                self._evaluate_round()

    def _evaluate_round(self):
        points, self._points = sorted(self._points.items()), {}
        try:
            self._results.update(zip([i for i, _ in points], self._evaluate(points)))
        except BaseException as error:  # noqa: BLE001  (every waiting run stops; minimize_together raises it)
            self.error = error
        finally:
            self._round += 1
            self._condition.notify_all()


def _to_params(points, preconditioners, params_list):
    """Write the parameters of each ``(problem, variables)`` of ``points``, one call per shared preconditioner."""
    for preconditioner, members in _by_preconditioner(points, preconditioners):
        preconditioner.params_together([v for _, v in members], [params_list[i] for i, _ in members])


def _to_variables(gradients, preconditioners):
    """The flat gradients in the variables of each problem, for ``(problem, grads)`` pairs, in their order."""
    out = {}
    for preconditioner, members in _by_preconditioner(gradients, preconditioners):
        out.update(zip([i for i, _ in members], preconditioner.gradients_together([g for _, g in members])))
    return [out[i] for i, _ in gradients]


def _by_preconditioner(pairs, preconditioners):
    """``pairs`` of ``(problem, value)`` grouped by their problems' preconditioner object."""
    groups = {}
    for i, value in pairs:
        groups.setdefault(id(preconditioners[i]), (preconditioners[i], []))[1].append((i, value))
    return groups.values()


_WINDOW = 10        # iterations over which an objective must fall by more than its resolution
_LEVEL = 10         # values within this many resolutions of each other are level
_LEVEL_TRIALS = 3   # line-search steps in a row that leave the objective level before L-BFGS gives up


class _LineSearchStalled(Exception):
    """A line search's trial steps no longer change the objective by more than its resolution."""


def stalled(values, eps, window=_WINDOW) -> bool:
    """Whether an objective computed to relative precision ``eps`` (float32's, say), ``values`` per
    iteration, fell by less than that resolution per iteration over the last ``window``: the optimum to
    the objective's precision. Past it L-BFGS's line searches accept steps whose values only round lower,
    scipy's ``ftol`` (set for float64) never triggers, and a fit would run on to ``max_iter``, however
    small the gradient tolerance asked."""
    if len(values) <= window:
        return False
    return values[-window - 1] - values[-1] <= window * eps * abs(values[-1])


def _gain_below_precision(result, rtol=1e-6) -> bool:
    """In preconditioned variables the curvature is about the identity, so ``|g|^2 / 2`` is what a Newton
    step would still gain: below ``rtol`` of the objective, a float32 line search cannot see it."""
    return 0.5 * float(np.dot(result.jac, result.jac)) <= rtol * max(abs(float(result.fun)), 1e-30)


def _resolution(value):
    """The relative precision of an objective value: its floating type's epsilon (float64 for Python floats)."""
    dtype = np.result_type(value)
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


class _Identity(Preconditioner):
    """No change of variables: L-BFGS works on the parameters themselves, flattened."""

    def __init__(self, params):
        self.splits = np.cumsum([param.size for param in params])[:-1]

    def variables(self, params):
        return np.concatenate([param.ravel() for param in params])

    def params(self, x, out):
        for param, chunk in zip(out, np.split(x, self.splits)):
            param[...] = chunk.reshape(param.shape)

    def gradient(self, grads):
        return np.concatenate([grad.ravel() for grad in grads])


def list_optimizers(pattern="*"):
    """Sorted optimiser names matching the shell-style wildcard ``pattern``."""
    return REGISTRY.names("optimizer", pattern)


def create_optimizer(optimizer, **overrides):
    """An optimiser from a name in ``list_optimizers()`` or from an optimiser object.

    ``overrides`` replace the name's defaults (or the object's settings, on a copy: the object
    itself is not changed). Overrides that are None, or that the optimiser does not take (say,
    ``momentum`` for Adam or ``learning_rate`` for L-BFGS), are dropped, so a caller can pass one
    set of settings whichever optimiser is chosen.
    """
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if isinstance(optimizer, str):
        return REGISTRY.create("optimizer", optimizer, drop_unknown=True, **overrides)
    if not isinstance(optimizer, (Optimizer, LBFGS)):
        raise TypeError(
            f"optimizer must be a name from {list_optimizers()} or an optimiser object, got {optimizer!r}"
        )
    accepted = optimizer.param_names()
    return type(optimizer)(**{**optimizer.settings(), **{k: v for k, v in overrides.items() if k in accepted}})
