"""A base for small configuration objects (optimisers, schedules) whose settings are their
``__init__`` arguments, stored under the same names and validated declaratively when built."""
import inspect

from ..core import check_constraints


class Hyperparameters:
    """Gives ``settings()``, validation of ``_constraints``, equality and a repr from the ``__init__`` signature.

    The method is deliberately not ``get_params``: scikit-learn would take these objects for
    nested estimators and expect the whole estimator protocol of them.
    """

    _constraints: dict = {}

    @classmethod
    def param_names(cls):
        return [
            name
            for name, param in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        ]

    def validate_params(self):
        """Raise ``ParamError`` (a ``ValueError``) naming the first invalid setting."""
        check_constraints(self, self._constraints)
        self._check_combination()

    def _check_combination(self):
        """Rules that tie several settings together; none by default."""

    def settings(self):
        return {name: getattr(self, name) for name in self.param_names()}

    def __eq__(self, other):
        return type(self) is type(other) and self.settings() == other.settings()

    def __repr__(self):
        args = ", ".join(f"{name}={value!r}" for name, value in self.settings().items())
        return f"{type(self).__name__}({args})"
