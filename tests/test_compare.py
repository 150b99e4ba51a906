"""`featurepipe compare`: the paired statistics on a case worked by hand, and the command end to end on two
heads `featurepipe train` fits on a small generated folder."""
import math

import numpy as np
import pytest
import yaml

from featurepipe.cli import EXIT_OK, EXIT_USAGE, main
from featurepipe.compare import compare_heads, compare_text, paired_difference


def outcomes(both, only_a, only_b, neither):
    """Per-image correctness of heads A and B with the given counts of each agreement."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


def test_paired_difference_worked_by_hand():
    # 20 images: both right on 9, only A on 6, only B on 1, neither on 4. A 75%, B 50%, difference 0.25.
    # Interval: 0.25 +- 1.96 sqrt(6 + 1 - 5^2 / 20) / 20 = 0.25 +- 1.96 sqrt(5.75) / 20 = [0.0150, 0.4850].
    # McNemar: 6 of 7 discordant images for A; p = 2 P(X <= 1), X ~ Binomial(7, 1/2) = 2 (1 + 7) / 128 = 0.125.
    result = paired_difference(*outcomes(9, 6, 1, 4))
    assert result["test_images"] == 20 and result["accuracy"] == [0.75, 0.5]
    assert (result["both_right"], result["only_a_right"], result["only_b_right"], result["neither_right"]) == (9, 6, 1, 4)
    assert result["difference"] == pytest.approx(0.25)
    half = 1.959963984540054 * math.sqrt(5.75) / 20
    assert result["interval_95"] == pytest.approx([0.25 - half, 0.25 + half])
    assert result["interval_95"] == pytest.approx([0.0150, 0.4850], abs=5e-5)
    assert result["mcnemar_p"] == pytest.approx(0.125)


def test_paired_difference_without_discordant_images():
    result = paired_difference(*outcomes(5, 0, 0, 3))
    assert result["difference"] == 0 and result["interval_95"] == [0, 0] and result["mcnemar_p"] == 1.0


def test_paired_difference_is_antisymmetric():
    a, b = outcomes(3, 2, 5, 1)
    forward, backward = paired_difference(a, b), paired_difference(b, a)
    assert forward["difference"] == pytest.approx(-backward["difference"])
    assert forward["interval_95"] == pytest.approx([-x for x in backward["interval_95"][::-1]])
    assert forward["mcnemar_p"] == pytest.approx(backward["mcnemar_p"])  # 2 (1 + 7 + 21) / 128
    assert forward["mcnemar_p"] == pytest.approx(58 / 128)


@pytest.fixture
def two_heads(tmp_path, image_folder, cache_dir):
    """A softmax head and a deliberately weak MLP (2 hidden units, 3 epochs) trained on the same folder."""
    cfg = {"dataset": {"path": str(image_folder)},
           "pipeline": {"extractor": {"color_hist": {"bins": 4}}},
           "run": {"cache_dir": str(cache_dir), "progress": False},
           "train": {"selection": "holdout", "validation_fraction": 0.25},
           "heads": [{"name": "softmax", "model": "linear", "params": {"max_iter": 100, "random_state": 0}},
                     {"name": "weak", "model": "mlp", "params": {"hidden_layer_sizes": [2], "max_iter": 3,
                                                                 "learning_rate": 0.001, "random_state": 0}}],
           "output": str(tmp_path / "runs")}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(config)]) == EXIT_OK
    return tmp_path / "runs" / "softmax", tmp_path / "runs" / "weak"


def test_compare_two_trained_heads(two_heads, capsys):
    first, second = two_heads
    capsys.readouterr()
    assert main(["compare", str(first), str(second)]) == EXIT_OK
    out = capsys.readouterr().out
    result = compare_heads(first, second)
    # Scored again from the cache, each head's accuracy is the one its training recorded.
    assert result["accuracy"] == pytest.approx(result["recorded"])
    assert result["test_images"] == 12 and result["only_a_right"] + result["only_b_right"] > 0
    lines = out.strip().splitlines()
    assert lines[0] == f"A: {first}: test accuracy {result['accuracy'][0]:.2%} (recorded at training: {result['recorded'][0]:.2%})"
    assert lines[2].startswith(f"12 test images: both right {result['both_right']}, only A {result['only_a_right']}")
    assert f"A - B: {100 * result['difference']:+.2f} points, 95% interval" in lines[3]
    assert lines[4].endswith(f"p = {result['mcnemar_p']:.4g}")
    low, high = result["interval_95"]
    assert len(lines) == 5 + ((low > 0 or high < 0) != (result["mcnemar_p"] < 0.05))


def test_compare_says_which_test_to_believe_when_they_disagree():
    """10 images only A labels correctly and 3 only B, of 90 (the demo's case): the normal interval excludes 0,
    McNemar's exact p does not reach 0.05, and the text says so; with 30 against 9 they agree."""
    both = lambda a, b, n: (np.r_[[True] * a, [False] * b, [True] * (n - a - b)],  # noqa: E731
                            np.r_[[False] * a, [True] * b, [True] * (n - a - b)])
    result = {**paired_difference(*both(10, 3, 90)), "heads": ["a", "b"], "recorded": [None, None]}
    assert result["interval_95"][0] > 0 and result["mcnemar_p"] > 0.05
    assert compare_text(result).splitlines()[-1].startswith("The two disagree at the 5% level")
    agreeing = {**paired_difference(*both(30, 9, 270)), "heads": ["a", "b"], "recorded": [None, None]}
    assert agreeing["mcnemar_p"] < 0.05 and "disagree" not in compare_text(agreeing)


def test_compare_refuses_a_folder_that_is_not_a_head(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == EXIT_USAGE  # a refused folder, as evaluate and predict
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a trained head" in err[0]


def test_p_values_as_text():
    from featurepipe.summary import p_text

    # a p-value that underflowed to 0 is not a p-value of 0
    assert [p_text(p) for p in (0.18801, 4.65e-12, 0.0)] == ["p=0.188", "p=4.65e-12", "p<1e-300"]
