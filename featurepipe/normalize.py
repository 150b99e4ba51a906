"""Feature normalisation between the store and a head: registered stages (kind ``"normalizer"``) that map
float32 feature rows to float32 rows, chained by ``Normalization`` and saved with the head.

Some learn from the training rows (standardisation, PCA whitening), which they read once, a block of
rows at a time (``fit_blocks``), so they fit on feature sets too large to copy; the others only
transform. Bag-of-words and histogram features usually want the signed square root (``power``) or an
explicit additive kernel map (``kernel_map``, as VLFeat's ``vl_homkermap``) before a linear head.
"""
from __future__ import annotations

import math

import numpy as np

from .core import NULL, REGISTRY, Instance, Integer, Options, Real, Sequence, Transformer, register
from .exact_kernel import additive_kernel

_EPS = np.float32(1e-12)


class Normalizer(Transformer):
    """Base: ``fit_blocks`` learns from training rows given as blocks (nothing, by default); ``apply`` maps
    rows (``transform`` too, in the container ``set_output`` asks for); ``n_outputs(d)`` is the output
    width for ``d`` input features, ``_names(inputs)`` the names of those outputs."""

    kind = "normalizer"
    learns = False  # True when fit_blocks reads the training rows

    def fit_blocks(self, blocks) -> "Normalizer":
        """Learn from an iterable of float32 row blocks (read once)."""
        self.validate_params()
        return self

    def fit(self, X, y=None):
        X = np.asarray(X, np.float32)
        self._n_features_in = X.shape[1]
        return self.fit_blocks([X])

    def transform(self, X):
        """Normalised float32 rows, or a DataFrame after ``set_output(transform="pandas")`` (the columns of a
        DataFrame ``X`` named through this step)."""
        columns = getattr(X, "columns", None)
        return self._as_output(self.apply(X), lambda: self.get_feature_names_out(
            None if columns is None else [str(c) for c in columns]), X)

    def apply(self, X) -> np.ndarray:
        """Normalised float32 rows: what featurepipe's own code reads."""
        self._ensure_valid()
        X = np.asarray(X, np.float32)
        self._n_features_in = X.shape[1]  # what the names of the output follow
        return self._transform(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """One name per output column, from the input's names (``input_features``, else ``x0``, ``x1``, ... for
        the rows last fitted or transformed): the same names for a step that keeps its columns."""
        if input_features is None:
            width = getattr(self, "_n_features_in", None)
            if width is None:
                from sklearn.exceptions import NotFittedError

                raise NotFittedError(f"{self.name}: fit or transform rows first, or give input_features")
            input_features = [f"x{i}" for i in range(width)]
        return np.asarray(self._names(list(input_features)), dtype=object)

    def n_outputs(self, n_features: int) -> int:
        return n_features

    def check_state(self, width: int) -> str | None:
        """What is wrong with the fitted state for ``width`` input features (a loaded head's), or None: each
        learnt array spans that width."""
        for name, array in self.fitted_state().items():
            if isinstance(array, np.ndarray) and array.ndim and array.shape[0] != width:
                return f"has {name} for {array.shape[0]} features, it receives {width}"
        return None

    def _names(self, inputs: list[str]) -> list[str]:
        return inputs

    def _transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _Moments:
    """Column sums, sums of squares (float64) and, optionally, cross products of row blocks."""

    def __init__(self, blocks, cross: bool = False):
        self.n, self.sum, self.squares, self.cross = 0, None, None, None
        for block in blocks:
            block64 = block.astype(np.float64)
            if self.sum is None:
                d = block.shape[1]
                self.sum, self.squares = np.zeros(d), np.zeros(d)
                self.cross = np.zeros((d, d)) if cross else None
            self.n += len(block)
            self.sum += block64.sum(axis=0)
            self.squares += np.einsum("ij,ij->j", block64, block64)
            if cross:
                self.cross += block64.T @ block64
        if not self.n:
            raise ValueError("no training rows to fit the normalisation on")

    @property
    def mean(self):
        return self.sum / self.n

    @property
    def variance(self):
        return np.maximum(self.squares / self.n - self.mean ** 2, 0.0)


@register("normalizer", "standardize")
class Standardize(Normalizer):
    """Zero mean and unit variance per feature, learnt on the training rows (constant features keep
    their scale); ``eps`` > 0 divides by ``sqrt(var + eps)`` instead, as Coates et al. do (0.01)."""

    learns = True
    _constraints = {"eps": Real(0)}

    def __init__(self, eps=0.0):
        self.eps = eps

    def fit_blocks(self, blocks):
        self.validate_params()
        moments = _Moments(blocks)
        scale = np.sqrt(moments.variance + self.eps)
        self.mean_ = moments.mean.astype(np.float32)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        return self

    def _transform(self, X):
        return (X - self.mean_) / self.scale_


@register("normalizer", "l1")
class L1(Normalizer):
    """Each row divided by the sum of its absolute values."""

    def _transform(self, X):
        return X / np.maximum(np.abs(X).sum(axis=1, keepdims=True), _EPS)


@register("normalizer", "l2")
class L2(Normalizer):
    """Each row divided by its Euclidean length."""

    def _transform(self, X):
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), _EPS)


@register("normalizer", "power")
class Power(Normalizer):
    """``sign(x) |x|^p``: with ``p=0.5`` the signed square root, which turns an L1-normalised histogram's
    dot product into the Hellinger (Bhattacharyya) kernel (Perronnin et al. 2010, Arandjelovic 2012)."""

    _constraints = {"p": Real(0, low_open=True)}

    def __init__(self, p=0.5):
        self.p = p

    def _transform(self, X):
        return np.sign(X) * np.abs(X) ** np.float32(self.p)


@register("normalizer", "pca_whiten")
class PCAWhiten(Normalizer):
    """Project on the leading ``n_components`` principal axes of the training rows (all that have variance
    when null), each divided by ``sqrt(eigenvalue + eps)``: decorrelated features of unit variance. Each
    axis points where its largest component is positive, so equal data give equal features."""

    learns = True
    _constraints = {"n_components": NULL | Integer(1), "eps": Real(0)}

    def __init__(self, n_components=None, eps=1e-5):
        self.n_components = n_components
        self.eps = eps

    def fit_blocks(self, blocks):
        self.validate_params()
        moments = _Moments(blocks, cross=True)
        mean = moments.mean
        covariance = moments.cross / moments.n - np.outer(mean, mean)
        values, vectors = np.linalg.eigh(covariance)
        values, vectors = values[::-1], vectors[:, ::-1]
        # Directions without variance (constant features, linear dependencies) carry nothing to whiten.
        keep = int(np.sum(values > 1e-6 * max(values[0], 0))) if len(values) else 0
        keep = keep if self.n_components is None else min(self.n_components, keep)
        values, vectors = values[:keep], vectors[:, :keep]
        vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(keep)])  # one sign per axis
        self.mean_ = mean.astype(np.float32)
        self.components_ = (vectors / np.sqrt(values + self.eps)).astype(np.float32)
        return self

    def n_outputs(self, n_features):
        if hasattr(self, "components_"):
            return self.components_.shape[1]
        return n_features if self.n_components is None else min(self.n_components, n_features)

    def _names(self, inputs):
        """``pca_whiten0``, ``pca_whiten1``, ...: the principal axes, largest variance first."""
        return [f"pca_whiten{i}" for i in range(self.n_outputs(len(inputs)))]

    def _transform(self, X):
        return (X - self.mean_) @ self.components_


#: Spectra of the homogeneous additive kernels (Vedaldi & Zisserman 2012): kappa(lambda).
_SPECTRA = {
    "chi2": lambda w: 1.0 / np.cosh(np.pi * w),
    "intersection": lambda w: (2.0 / np.pi) / (1.0 + 4.0 * w * w),
}
#: VLFeat's default period of the periodicised spectrum, per window and kernel (as a function of the order).
_PERIODS = {
    ("uniform", "chi2"): lambda n: 5.86 * math.sqrt(n) + 3.65,
    ("uniform", "intersection"): lambda n: 2.38 * math.log(n + 0.8) + 5.6,
    ("rectangular", "chi2"): lambda n: 8.80 * math.sqrt(n + 4.44) - 12.6,
    ("rectangular", "intersection"): lambda n: 2.00 * math.log(n + 0.99) + 3.52,
}


def _smooth_spectrum(kernel: str, omega: np.ndarray, period: float) -> np.ndarray:
    """The spectrum convolved with the transform of a rectangular window one period wide (VLFeat's
    ``get_smooth_spectrum``), clipped at zero: the truncated map then approximates the kernel better."""
    span = 2.0 / (period * 1e-2)
    step = 2 * span / (2 * 1024.0 + 1)
    shifts = np.arange(-span, span + step / 2, step)
    window = np.sinc(period / 2.0 * shifts / np.pi) * period / (2 * np.pi)  # numpy's sinc is sin(pi x)/(pi x)
    smooth = (window * _SPECTRA[kernel](shifts[None, :] + np.asarray(omega)[:, None])).sum(axis=1) * step
    return np.maximum(smooth, 0.0)


@register("normalizer", "kernel_map")
class AdditiveKernelMap(Normalizer):
    """Explicit feature map of an additive homogeneous kernel (VLFeat's ``vl_homkermap``): a linear head on
    the mapped features approximates an SVM with the ``chi2`` or ``intersection`` kernel; ``hellinger``
    is exact (``sqrt(x)``). Each feature x becomes ``2 * order + 1`` values::

        sqrt(x L kappa(0)),  sqrt(2 x L kappa(jL)) cos(j L log x),  sqrt(2 x L kappa(jL)) sin(j L log x)

    for j = 1..order, with ``L = 2 pi / period`` (``period`` null: VLFeat's heuristic). ``window``
    ``rectangular`` (VLFeat's default) samples the spectrum smoothed by a one-period window, ``uniform``
    samples it as it is (scikit-learn's ``AdditiveChi2Sampler`` for chi2). Negative values map to the
    negated map of ``|x|``, as VLFeat does. Columns are ordered as scikit-learn's: the ``sqrt`` terms of
    all features, then the cosines and sines per j.
    """

    _constraints = {
        "kernel": Options("chi2", "intersection", "hellinger"),
        "order": Integer(0, 10),
        "period": NULL | Real(0, low_open=True),
        "window": Options("rectangular", "uniform"),
    }

    def __init__(self, kernel="chi2", order=1, period=None, window="rectangular"):
        self.kernel = kernel
        self.order = order
        self.period = period
        self.window = window

    def _terms(self) -> tuple[float, np.ndarray]:
        """The sampling step L and the spectrum kappa(jL) for j = 0..order."""
        if self.kernel == "hellinger":
            return 1.0, np.ones(1)
        period = self.period if self.period is not None else max(_PERIODS[self.window, self.kernel](self.order), 1.0)
        step = 2 * np.pi / period
        omega = step * np.arange(self.order + 1)
        if self.window == "uniform":
            return step, _SPECTRA[self.kernel](omega)
        return step, _smooth_spectrum(self.kernel, omega, period)

    def n_outputs(self, n_features):
        return n_features * (1 if self.kernel == "hellinger" else 2 * self.order + 1)

    def _names(self, inputs):
        """``x3_sqrt`` for every input, then per j ``x3_cos1`` and ``x3_sin1``: the order of the columns."""
        terms = [[f"{x}_sqrt" for x in inputs]]
        if self.kernel != "hellinger":
            for j in range(1, self.order + 1):
                terms += [[f"{x}_cos{j}" for x in inputs], [f"{x}_sin{j}" for x in inputs]]
        return [name for term in terms for name in term]

    def _transform(self, X):
        step, kappa = self._terms()
        sign, magnitude = np.sign(X), np.abs(X)
        out = [sign * np.sqrt(magnitude * np.float32(step * kappa[0]))]
        if self.kernel != "hellinger" and self.order:
            positive = magnitude > 0
            log_x = np.log(np.where(positive, magnitude, 1), dtype=np.float32)
            for j in range(1, self.order + 1):
                factor = sign * np.sqrt(magnitude * np.float32(2 * step * kappa[j]))
                out += [factor * np.cos(np.float32(j * step) * log_x), factor * np.sin(np.float32(j * step) * log_x)]
        return np.hstack(out).astype(np.float32, copy=False)


@register("normalizer", "exact_kernel")
class ExactKernel(Normalizer):
    """The empirical map of an exact additive kernel (``chi2`` or ``intersection``) on the training rows: a
    row ``x`` becomes ``k(x, rows_) coefficients_`` (``rows_``: the training rows, ``d x n``, as they reach this
    step; ``coefficients_``: ``U L^(-1/2)`` of their kernel matrix, ``n x r``). A linear head with an L2 penalty
    on these features is the kernel machine of the training rows; ``kernel_map`` is its cheaper approximation.
    The last step of a normalisation, after ``l1``."""

    learns = True
    _constraints = {"kernel": Options("chi2", "intersection")}

    def __init__(self, kernel="chi2"):
        self.kernel = kernel

    def fit_blocks(self, blocks):
        self.validate_params()
        rows = np.vstack(list(blocks)).astype(np.float32, copy=False)
        return self.fit_kernel(rows, additive_kernel(rows, rows, self.kernel))

    def fit_kernel(self, rows, K) -> "ExactKernel":
        """Fit on ``rows`` whose kernel matrix ``K`` is computed already (a search's, for its refit)."""
        from .heads.row_space import GramSpace

        self.validate_params()
        self.rows_ = np.ascontiguousarray(np.asarray(rows, np.float32).T)
        self.coefficients_ = GramSpace(K).coefficients.astype(np.float32)
        return self

    def kernel_matrix(self, X) -> np.ndarray:
        """The kernel between the rows of ``X`` (as they reach this step): what a search's folds share."""
        self.validate_params()
        return additive_kernel(X, X, self.kernel)

    def n_outputs(self, n_features: int) -> int:
        """The rank of the training rows' kernel matrix, once fitted; before, ``n_features`` (unknown: the
        search treats an exact kernel as the Gram matrix it is)."""
        return self.coefficients_.shape[1] if hasattr(self, "coefficients_") else n_features

    def check_state(self, width: int) -> str | None:
        if self.rows_.ndim != 2 or self.coefficients_.ndim != 2 or self.rows_.shape[0] != width or (
                self.coefficients_.shape[0] != self.rows_.shape[1]):
            return (f"has rows_ of shape {self.rows_.shape} and coefficients_ of shape {self.coefficients_.shape}, "
                    f"it receives {width} features")
        return None

    def _names(self, inputs):
        return [f"{self.kernel}_kernel{i}" for i in range(self.n_outputs(len(inputs)))]

    def _transform(self, X):
        return (additive_kernel(X, self.rows_.T, self.kernel) @ self.coefficients_).astype(np.float32)


class Normalization(Transformer):
    """A chain of normalisers applied in order (``steps``: a list of ``Normalizer`` objects)."""

    kind = "normalization"
    _constraints = {"steps": Sequence(Instance(Normalizer, "be a normaliser"), min_length=0,
                                      message="must be a list of normalisers")}

    def __init__(self, steps=()):
        self.steps = steps

    @classmethod
    def from_spec(cls, spec, where: str = "normalize") -> "Normalization":
        """From a config value: a name, ``{name: {params}}``, or a list of them (``[power, l2]``)."""
        items = spec if isinstance(spec, (list, tuple)) else [] if spec in (None, "none") else [spec]
        steps = []
        for i, item in enumerate(items):
            name, params = (item, {}) if isinstance(item, str) else next(iter(item.items())) if (
                isinstance(item, dict) and len(item) == 1) else (None, None)
            if name is None:
                raise ValueError(f"{where}[{i}]: expected a normaliser name or {{name: {{parameters}}}}, got {item!r}")
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in (params or {}).items()}
            try:
                steps.append(REGISTRY.create("normalizer", name, **params))
            except ValueError as e:
                raise ValueError(f"{where}[{i}].{e}" if str(e).split(":")[0] in params else f"{where}[{i}]: {e}") from None
        return cls(tuple(steps))

    @property
    def learns(self) -> bool:
        return any(step.learns for step in self.steps)

    def fit_blocks(self, blocks_factory):
        """Fit each step on the training rows as transformed by the steps before it; ``blocks_factory()``
        yields the raw row blocks anew for every step that learns (one pass each)."""
        self.validate_params()
        for i, step in enumerate(self.steps):
            before = self.steps[:i]
            step.fit_blocks(_chain(before, block) for block in blocks_factory()) if step.learns else step.fit_blocks([])
        return self

    def fit(self, X, y=None):
        return self.fit_blocks(lambda: [np.asarray(X, np.float32)])

    def transform(self, X) -> np.ndarray:
        return _chain(self.steps, np.asarray(X, np.float32))

    def n_outputs(self, n_features: int) -> int:
        for step in self.steps:
            n_features = step.n_outputs(n_features)
        return n_features


def _chain(steps, X):
    for step in steps:
        X = step.apply(X)
    return X
