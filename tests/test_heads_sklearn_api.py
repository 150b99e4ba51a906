"""The heads are scikit-learn classifiers: the conformance suite and the behaviour users rely on."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from featurepipe.heads import LinearClassifier, MLPClassifier


@parametrize_with_checks([LinearClassifier(), MLPClassifier()])
def test_sklearn_conformance(estimator, check):
    check(estimator)
