"""``featurepipe compare RUN/HEAD RUN/HEAD``: whether two trained heads differ on the same test images.
Either may be a late fusion of heads (``fused_folder.py``).

Each head labels its data set's test images again, from the cache (the features its folder's config
names; extracted first if they are missing), and the two are compared image by image: the difference in
accuracy with a 95% interval for a paired difference, and McNemar's exact test on the images only one
of them labels correctly. A difference in accuracy alone says nothing about chance; pairing the images
removes the spread between easy and hard images from the comparison.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .metrics import Z_95


def paired_difference(right_a: np.ndarray, right_b: np.ndarray) -> dict:
    """Accuracy of A minus that of B on the same images (booleans: labelled correctly), with its 95% interval
    and McNemar's exact p-value.

    The interval is the normal one for a paired difference of proportions, ``d +- z sqrt(b + c - (b - c)^2 / n) / n``
    (``b``, ``c``: images only A, only B labels correctly): the limit of a bootstrap over images. McNemar's
    test is the two-sided binomial test of ``b`` in ``b + c`` at one half (p = 1 when there are none)."""
    from scipy.stats import binomtest

    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    n = len(right_a)
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    difference = (only_a - only_b) / n
    half_width = Z_95 * math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / n) / n
    return {"test_images": n, "accuracy": [float(right_a.mean()), float(right_b.mean())],
            "both_right": int(np.sum(right_a & right_b)), "only_a_right": only_a, "only_b_right": only_b,
            "neither_right": int(np.sum(~right_a & ~right_b)), "difference": difference,
            "interval_95": [difference - half_width, difference + half_width],
            "mcnemar_p": float(binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0}


def correct_on_test(folder, run=None) -> tuple[list[str], np.ndarray, float | None]:
    """The test images' ids, whether the head in ``folder`` labels each correctly, and the test accuracy
    its training recorded (``metrics.json``; None without one); features computed as ``run`` says."""
    from .evaluate import trained_with_its_data
    from .files import read_json
    from .fused_folder import is_fused

    if is_fused(folder):
        answers = fused_test_answers(folder, run)
    else:
        trained, _, data = trained_with_its_data(folder, run)
        answers = test_answers(data, trained.model, trained.normalization)
    metrics = Path(folder) / "metrics.json"
    recorded = read_json(metrics)["test"]["accuracy"] if metrics.exists() else None
    return list(answers), np.fromiter(answers.values(), bool, len(answers)), recorded


def test_answers(data, model, normalization) -> dict[str, bool]:
    """Whether ``model`` (after ``normalization``) labels each test image of ``data`` (a ``fitting.
    TrainingData``) correctly, by image id, in the entry's order."""
    from .fitting import predict_rows

    rows = data.test_rows
    predicted = predict_rows(data.store, data.key, rows, model, normalization)
    ids = data.store.items(data.key)["ids"]
    return dict(zip((ids[r] for r in rows), (predicted.astype(str) == data.labels[rows].astype(str)).tolist()))


def fused_test_answers(folder, run=None) -> dict[str, bool]:
    """``test_answers`` of the late fusion in ``folder`` (``fused_folder.py``): its members' log-probabilities
    on their data set's test images (features computed as ``run`` says), weighted as chosen at training.
    ``ValueError`` when the members' test images differ."""
    from .evaluate import trained_with_its_data
    from .fused_folder import load_fused
    from .fusion import fused_test_answers as answers

    fused = load_fused(folder)
    datas = [trained_with_its_data(member.folder, run)[2] for member in fused.members]
    tested = [np.asarray(data.store.items(data.key)["ids"])[data.test_rows] for data in datas]
    if any(not np.array_equal(ids, tested[0]) for ids in tested):
        raise ValueError(f"{folder}: its members were not tested on the same images")
    return answers(fused.members, datas, fused.weights)


def mcnemar_p(answers_a: dict, answers_b: dict) -> float:
    """McNemar's exact p-value (``paired_difference``) of two heads' ``test_answers``, on the images both have
    (a file one pipeline could not read is left out of the pair); 1 when they share none."""
    common = [image for image in answers_a if image in answers_b]
    if not common:
        return 1.0
    return paired_difference(np.array([answers_a[i] for i in common], bool),
                             np.array([answers_b[i] for i in common], bool))["mcnemar_p"]


def compare_heads(first, second, run=None) -> dict:
    """``paired_difference`` of the trained heads in folders ``first`` (A) and ``second`` (B) on their test
    images, with the folders and the accuracies their training recorded. ``ValueError`` when the two were
    not tested on the same images."""
    (ids_a, right_a, recorded_a), (ids_b, right_b, recorded_b) = correct_on_test(first, run), correct_on_test(second, run)
    if ids_a != ids_b:
        raise ValueError(f"{first} and {second} were not tested on the same images "
                         f"({len(ids_a)} and {len(ids_b)} test images)")
    if not ids_a:
        raise ValueError(f"{first}: no test images to compare on")
    return {"heads": [str(first), str(second)], "recorded": [recorded_a, recorded_b],
            **paired_difference(right_a, right_b)}


def compare_text(result: dict) -> str:
    """``compare_heads``'s result on one screen."""
    lines = []
    for name, head, accuracy, recorded in zip("AB", result["heads"], result["accuracy"], result["recorded"]):
        noted = f" (recorded at training: {recorded:.2%})" if recorded is not None else ""
        lines.append(f"{name}: {head}: test accuracy {accuracy:.2%}{noted}")
    low, high = result["interval_95"]
    discordant = result["only_a_right"] + result["only_b_right"]
    lines += [f"{result['test_images']} test images: both right {result['both_right']}, only A {result['only_a_right']}, "
              f"only B {result['only_b_right']}, neither {result['neither_right']}",
              f"A - B: {100 * result['difference']:+.2f} points, 95% interval [{100 * low:+.2f}, {100 * high:+.2f}] points",
              f"McNemar's exact test on the {discordant} images only one labels correctly: p = {result['mcnemar_p']:.4g}"]
    if (low > 0 or high < 0) != (result["mcnemar_p"] < 0.05):
        lines.append(f"The two disagree at the 5% level: the interval is a normal approximation, loose with only "
                     f"{discordant} images that tell the heads apart; McNemar's test is exact, go by it.")
    return "\n".join(lines)
