"""Diagonal Gaussian mixtures: the vocabulary of Fisher vectors."""
from __future__ import annotations

import numpy as np

from ..core.progress import progress_bar


def fit_gmm(X: np.ndarray, n_components: int, *, max_iter: int = 100, rng: np.random.Generator | None = None):
    """``(weights, means, variances)`` float32 of a diagonal GMM fitted by EM (scikit-learn, k-means init);
    each EM iteration advances a progress bar (``core.progress``)."""
    from sklearn.mixture import GaussianMixture

    class ReportingMixture(GaussianMixture):
        # scikit-learn calls this hook after every EM iteration (to print when verbose); were it renamed, the bar
        # would only stand still.
        def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
            super()._print_verbose_msg_iter_end(n_iter, diff_ll)
            bar.update()

    seed = int(np.random.default_rng(rng).integers(2**31 - 1))
    fit = lambda dtype: ReportingMixture(n_components, covariance_type="diag", max_iter=max_iter,  # noqa: E731
                                         reg_covar=1e-6, random_state=seed).fit(np.asarray(X, dtype))
    with progress_bar(max_iter, "GMM (EM)", "iteration") as bar:
        try:
            model = fit(np.float32)
        except ValueError:
            # A component collapsed onto identical samples (flat image regions all give one descriptor, e.g. the
            # colour channels of a grey image) and float32 rounding took its variance below zero: scikit-learn's
            # advice, the same fit in float64, where the variance floor reg_covar holds.
            bar.reset()
            model = fit(np.float64)
        if model.converged_:
            bar.set_postfix_str("converged")
    return (model.weights_.astype(np.float32), model.means_.astype(np.float32),
            model.covariances_.astype(np.float32))


def gmm_posteriors(X: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Posterior ``p(k | x)`` of every row of ``X`` (N, d) for every component: (N, K) float32.

    The log-likelihoods of all components are one matrix product of ``[x^2, x]`` with
    ``[-1 / (2 var), mean / var]``, plus a per-component constant.
    """
    precisions = 1.0 / variances
    d = X.shape[1]
    matrix = np.concatenate([-0.5 * precisions, means * precisions], axis=1).T.astype(np.float32)
    constant = (np.log(weights) - 0.5 * (np.sum(means**2 * precisions, axis=1) + np.sum(np.log(variances), axis=1)
                                         + d * np.log(2 * np.pi))).astype(np.float32)
    log_p = np.concatenate([X * X, X], axis=1) @ matrix
    log_p += constant
    log_p -= log_p.max(axis=1, keepdims=True)
    np.exp(log_p, out=log_p)
    log_p /= log_p.sum(axis=1, keepdims=True)
    return log_p
