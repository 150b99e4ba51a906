"""Learning-rate schedules: values at chosen epochs, composition with warm-up, how a head builds its own."""
import pytest

from featurepipe.core import ParamError
from featurepipe.heads import LinearClassifier
from featurepipe.heads.schedules import ConstantSchedule, CosineSchedule, LinearWarmup, StepSchedule


def test_constant():
    assert [ConstantSchedule()(t) for t in (0, 3.5, 100)] == [1.0, 1.0, 1.0]


def test_step_decays_every_step_size_epochs():
    schedule = StepSchedule(step_size=10, gamma=0.5)
    assert [schedule(t) for t in (0, 9.99, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_cosine_runs_from_one_to_the_floor():
    schedule = CosineSchedule(total_epochs=20, min_factor=0.1)
    assert schedule(0) == 1.0
    assert schedule(10) == pytest.approx(0.55)
    assert schedule(20) == pytest.approx(0.1)
    assert schedule(30) == pytest.approx(0.1)


def test_warmup_ramps_linearly_then_follows_the_wrapped_schedule():
    schedule = LinearWarmup(CosineSchedule(total_epochs=20), warmup_epochs=4, start_factor=0.2)
    assert schedule(0) == pytest.approx(0.2)
    assert schedule(2) == pytest.approx(0.6 * CosineSchedule(20)(2))
    assert schedule(4) == pytest.approx(CosineSchedule(20)(4))
    assert schedule(15) == pytest.approx(CosineSchedule(20)(15))


def schedule_of(**params):
    """The schedule a linear head with ``params`` trains with (what ``fit`` uses)."""
    return LinearClassifier(**params)._schedule()


def params_of(schedule):
    return type(schedule), {k: params_of(v) if hasattr(v, "get_params") else v
                            for k, v in schedule.get_params(deep=False).items()}


def test_named_schedules_fit_the_training_length():
    assert params_of(schedule_of(schedule="constant", max_iter=30)) == params_of(ConstantSchedule())
    assert params_of(schedule_of(schedule="step", max_iter=30)) == params_of(StepSchedule(step_size=10))
    assert params_of(schedule_of(schedule="cosine", max_iter=30)) == params_of(CosineSchedule(total_epochs=30))
    assert params_of(schedule_of(schedule=CosineSchedule(12), max_iter=30)) == params_of(CosineSchedule(12))


def test_warmup_wraps_names_and_objects():
    step = StepSchedule(step_size=5)
    assert params_of(schedule_of(schedule=step, max_iter=30, warmup_epochs=2)) == params_of(LinearWarmup(step, 2))
    assert params_of(schedule_of(schedule="cosine", max_iter=30, warmup_epochs=3)) == params_of(
        LinearWarmup(CosineSchedule(30), 3))


def test_unknown_schedules_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="cosine"):
        schedule_of(schedule="exponential")
    with pytest.raises(ParamError, match="schedule: must be"):
        LinearClassifier(schedule=0.5).validate_params()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StepSchedule(step_size=0), "step_size"),
        (lambda: StepSchedule(step_size=3, gamma=0), "gamma"),
        (lambda: CosineSchedule(total_epochs=0), "total_epochs"),
        (lambda: LinearWarmup(ConstantSchedule(), warmup_epochs=0), "warmup_epochs"),
    ],
)
def test_bad_settings_name_themselves(make, message):
    with pytest.raises(ParamError, match=message):
        make().validate_params()
