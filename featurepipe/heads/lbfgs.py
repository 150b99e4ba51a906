"""Full-batch L-BFGS, through ``scipy.optimize.minimize(method="L-BFGS-B")``: one fit (``minimize``) or several
fits evaluated in shared rounds (``minimize_together``, a grid of penalties on the same rows), with stopping
rules for float32 objectives that scipy's float64 tolerances do not see."""
import threading
from functools import partial

import numpy as np

from ..core import Integer, Stage, register
from .preconditioning import Preconditioner


@register("optimizer", "lbfgs")
class LBFGS(Stage):
    """Full-batch limited-memory BFGS, through ``scipy.optimize.minimize(method="L-BFGS-B")``.

    It needs a deterministic objective over the whole training set, so no mini-batches, dropout,
    schedules or weight decay.
    """

    kind = "optimizer"
    full_batch = True
    _constraints = {"max_corrections": Integer(1)}

    def __init__(self, max_corrections=10):
        self.max_corrections = max_corrections

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
        the products with a 45,000 x 8,000 matrix cost 1.3 times as much for 60 columns as for 10, not 6 times
        (``benchmarks/bench_columns.py``).
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
