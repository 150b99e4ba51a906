"""Learning-rate schedules: multipliers of the optimiser's learning rate as a function of training time.

A schedule is called with the (fractional) number of epochs done so far, ``t >= 0``, before each
step, and returns the factor for that step. ``LinearWarmup`` wraps any other schedule.
"""
import math

from ._hyperparameters import Hyperparameters


class ConstantSchedule(Hyperparameters):
    """The learning rate as given, throughout."""

    def __call__(self, t):
        return 1.0


class StepSchedule(Hyperparameters):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size, gamma=0.1):
        if not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        self.step_size = step_size
        self.gamma = gamma

    def __call__(self, t):
        return self.gamma ** math.floor(t / self.step_size)


class CosineSchedule(Hyperparameters):
    """Half a cosine from 1 down to ``min_factor`` over ``total_epochs`` (Loshchilov and Hutter, 2017)."""

    def __init__(self, total_epochs, min_factor=0.0):
        if not total_epochs > 0:
            raise ValueError(f"total_epochs must be positive, got {total_epochs!r}")
        if not 0 <= min_factor <= 1:
            raise ValueError(f"min_factor must be in [0, 1], got {min_factor!r}")
        self.total_epochs = total_epochs
        self.min_factor = min_factor

    def __call__(self, t):
        progress = min(t / self.total_epochs, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class LinearWarmup(Hyperparameters):
    """Ramp linearly from ``start_factor`` to 1 over ``warmup_epochs``, times ``schedule``.

    Large first steps from a random start can throw a network into a region it never leaves;
    warm-up avoids them, whatever schedule follows.
    """

    def __init__(self, schedule, warmup_epochs, start_factor=0.01):
        if not warmup_epochs > 0:
            raise ValueError(f"warmup_epochs must be positive, got {warmup_epochs!r}")
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor!r}")
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.start_factor = start_factor

    def __call__(self, t):
        ramp = self.start_factor + (1 - self.start_factor) * min(t / self.warmup_epochs, 1.0)
        return ramp * self.schedule(t)


def create_schedule(schedule, total_epochs, warmup_epochs=0):
    """A schedule from a name (``"constant"``, ``"step"``, ``"cosine"``) or a schedule object.

    Named schedules are fitted to ``total_epochs``: ``"step"`` divides the learning rate by 10 at
    each third of training and ``"cosine"`` reaches 0 at the end. ``warmup_epochs`` above 0 adds a
    linear warm-up in front.
    """
    if isinstance(schedule, str):
        if schedule == "constant":
            schedule = ConstantSchedule()
        elif schedule == "step":
            schedule = StepSchedule(step_size=max(1, math.ceil(total_epochs / 3)))
        elif schedule == "cosine":
            schedule = CosineSchedule(total_epochs)
        else:
            raise ValueError(
                f"schedule must be 'constant', 'step', 'cosine' or a schedule object, got {schedule!r}"
            )
    elif not callable(schedule):
        raise TypeError(f"schedule must be a name or a callable schedule object, got {schedule!r}")
    if warmup_epochs:
        schedule = LinearWarmup(schedule, warmup_epochs)
    return schedule
