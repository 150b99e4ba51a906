"""Learning-rate schedules: multipliers of the optimiser's learning rate as a function of training time.

A schedule is called with the (fractional) number of epochs done so far, ``t >= 0``, before each
step, and returns the factor for that step. Schedules are registered stages (kind ``"schedule"``); a
length left at None is the training's (``for_training``), so a name means the same thing for any
``max_iter``. ``LinearWarmup`` wraps any other schedule; heads add it with ``warmup_epochs``.
"""
import math

from ..core import NULL, Part, Real, Stage, register


class Schedule(Stage):
    """Base of schedules: ``schedule(t)`` is the learning-rate factor after ``t`` epochs."""

    kind = "schedule"

    def for_training(self, total_epochs) -> "Schedule":
        """This schedule for a training of ``total_epochs``: a copy with lengths left at None set from it."""
        return self

    def __call__(self, t):
        raise NotImplementedError


@register("schedule", "constant")
class ConstantSchedule(Schedule):
    """The learning rate as given, throughout."""

    def __call__(self, t):
        return 1.0


@register("schedule", "step")
class StepSchedule(Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (None: at each third of training)."""

    _constraints = {"step_size": NULL | Real(0, low_open=True), "gamma": Real(0, 1, low_open=True)}

    def __init__(self, step_size=None, gamma=0.1):
        self.step_size = step_size
        self.gamma = gamma

    def for_training(self, total_epochs):
        if self.step_size is not None:
            return self
        return StepSchedule(step_size=max(1, math.ceil(total_epochs / 3)), gamma=self.gamma)

    def __call__(self, t):
        return self.gamma ** math.floor(t / self.step_size)


@register("schedule", "cosine")
class CosineSchedule(Schedule):
    """Half a cosine from 1 down to ``min_factor`` over ``total_epochs`` (None: the whole training;
    Loshchilov and Hutter, 2017)."""

    _constraints = {"total_epochs": NULL | Real(0, low_open=True), "min_factor": Real(0, 1)}

    def __init__(self, total_epochs=None, min_factor=0.0):
        self.total_epochs = total_epochs
        self.min_factor = min_factor

    def for_training(self, total_epochs):
        if self.total_epochs is not None:
            return self
        return CosineSchedule(total_epochs=total_epochs, min_factor=self.min_factor)

    def __call__(self, t):
        progress = min(t / self.total_epochs, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@register("schedule", "linear_warmup")
class LinearWarmup(Schedule):
    """Ramp linearly from ``start_factor`` to 1 over ``warmup_epochs``, times ``schedule``.

    Large first steps from a random start can throw a network into a region it never leaves;
    warm-up avoids them, whatever schedule follows. Heads add it with ``warmup_epochs``.
    """

    _constraints = {"schedule": Part("schedule"), "warmup_epochs": Real(0, low_open=True),
                    "start_factor": Real(0, 1, low_open=True)}

    def __init__(self, schedule="constant", warmup_epochs=1.0, start_factor=0.01):
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.start_factor = start_factor

    def for_training(self, total_epochs):
        return LinearWarmup(self._part("schedule").for_training(total_epochs), self.warmup_epochs, self.start_factor)

    def __call__(self, t):
        ramp = self.start_factor + (1 - self.start_factor) * min(t / self.warmup_epochs, 1.0)
        return ramp * self.schedule(t)
