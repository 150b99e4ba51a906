"""A base for small configuration objects (optimisers, schedules) whose settings are their
``__init__`` arguments, stored under the same names."""
import inspect


class Hyperparameters:
    """Gives ``get_params``, equality and a repr from the ``__init__`` signature."""

    @classmethod
    def param_names(cls):
        return [
            name
            for name, param in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        ]

    def get_params(self):
        return {name: getattr(self, name) for name in self.param_names()}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __repr__(self):
        args = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({args})"
