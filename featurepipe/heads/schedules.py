"""Learning-rate schedules: multipliers of the optimiser's learning rate as a function of training time.

A schedule is called with the (fractional) number of epochs done so far, ``t >= 0``, before each
step, and returns the factor for that step. ``LinearWarmup`` wraps any other schedule.
"""
import math

from ..core import REGISTRY, Real, register
from ._hyperparameters import Hyperparameters


@register("schedule", "constant")
class ConstantSchedule(Hyperparameters):
    """The learning rate as given, throughout."""

    @classmethod
    def for_training(cls, total_epochs):
        """The schedule its name means for a training of ``total_epochs``."""
        return cls()

    def __call__(self, t):
        return 1.0


@register("schedule", "step")
class StepSchedule(Hyperparameters):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (by name: at each third of training)."""

    _constraints = {"step_size": Real(0, low_open=True), "gamma": Real(0, 1, low_open=True)}

    def __init__(self, step_size, gamma=0.1):
        self.step_size = step_size
        self.gamma = gamma
        self.validate_params()

    @classmethod
    def for_training(cls, total_epochs):
        return cls(step_size=max(1, math.ceil(total_epochs / 3)))

    def __call__(self, t):
        return self.gamma ** math.floor(t / self.step_size)


@register("schedule", "cosine")
class CosineSchedule(Hyperparameters):
    """Half a cosine from 1 down to ``min_factor`` over ``total_epochs`` (Loshchilov and Hutter, 2017)."""

    _constraints = {"total_epochs": Real(0, low_open=True), "min_factor": Real(0, 1)}

    def __init__(self, total_epochs, min_factor=0.0):
        self.total_epochs = total_epochs
        self.min_factor = min_factor
        self.validate_params()

    @classmethod
    def for_training(cls, total_epochs):
        return cls(total_epochs)

    def __call__(self, t):
        progress = min(t / self.total_epochs, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@register("schedule", "linear_warmup")
class LinearWarmup(Hyperparameters):
    """Ramp linearly from ``start_factor`` to 1 over ``warmup_epochs``, times ``schedule``.

    Large first steps from a random start can throw a network into a region it never leaves;
    warm-up avoids them, whatever schedule follows. Heads add it with ``warmup_epochs``.
    """

    _constraints = {"warmup_epochs": Real(0, low_open=True), "start_factor": Real(0, 1, low_open=True)}

    def __init__(self, schedule, warmup_epochs, start_factor=0.01):
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.start_factor = start_factor
        self.validate_params()

    def __call__(self, t):
        ramp = self.start_factor + (1 - self.start_factor) * min(t / self.warmup_epochs, 1.0)
        return ramp * self.schedule(t)


def create_schedule(schedule, total_epochs, warmup_epochs=0):
    """A schedule from a registered name (``"constant"``, ``"step"``, ``"cosine"``) or a schedule object.

    Named schedules are fitted to ``total_epochs``: ``"step"`` divides the learning rate by 10 at
    each third of training and ``"cosine"`` reaches 0 at the end. ``warmup_epochs`` above 0 adds a
    linear warm-up in front.
    """
    if isinstance(schedule, str):
        factory = REGISTRY.get("schedule", schedule)
        if not hasattr(factory, "for_training"):
            raise ValueError(f"schedule {schedule!r} wraps another schedule; heads add it with warmup_epochs")
        schedule = factory.for_training(total_epochs)
    elif not callable(schedule):
        raise TypeError(f"schedule must be a name or a callable schedule object, got {schedule!r}")
    if warmup_epochs:
        schedule = LinearWarmup(schedule, warmup_epochs)
    return schedule
