"""Learning-rate schedules: values at chosen epochs, composition with warm-up, the factory."""
import pytest

from featurepipe.heads.schedules import (
    ConstantSchedule,
    CosineSchedule,
    LinearWarmup,
    StepSchedule,
    create_schedule,
)


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


def test_create_schedule_fits_named_schedules_to_the_training_length():
    assert create_schedule("constant", total_epochs=30) == ConstantSchedule()
    assert create_schedule("step", total_epochs=30) == StepSchedule(step_size=10)
    assert create_schedule("cosine", total_epochs=30) == CosineSchedule(total_epochs=30)


def test_create_schedule_adds_warmup_to_names_and_objects():
    step = StepSchedule(step_size=5)
    assert create_schedule(step, total_epochs=30, warmup_epochs=2) == LinearWarmup(step, 2)
    assert create_schedule("cosine", 30, warmup_epochs=3) == LinearWarmup(CosineSchedule(30), 3)


def test_create_schedule_rejects_unknown_schedules():
    with pytest.raises(ValueError, match="cosine"):
        create_schedule("exponential", total_epochs=10)
    with pytest.raises(TypeError, match="schedule"):
        create_schedule(0.5, total_epochs=10)


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
    with pytest.raises(ValueError, match=message):
        make()
