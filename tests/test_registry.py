"""The one registry: every kind lists, creates and names its unknown parameters, and every entry is a
``Stage`` with scikit-learn's parameter protocol; the contract is parametrised over every registered
entry, so a new one is held to it automatically."""
import inspect

import pytest

import featurepipe
from featurepipe import catalog
from featurepipe.core import REGISTRY, Registry, Stage

ENTRIES = [(kind, name) for kind in catalog.kinds() for name in featurepipe.list(kind)]
# Entries that need arguments no default provides (extractors to concatenate).
REQUIRED = {("extractor", "concat")}


def test_every_kind_has_entries():
    for kind in catalog.kinds():
        assert featurepipe.list(kind), kind
    assert featurepipe.list("optimizer", "adam*") == ["adam", "adamw"]


@pytest.mark.parametrize("kind, name", ENTRIES)
def test_entry_is_documented_and_lists_its_defaults(kind, name):
    factory = catalog.get(kind, name)
    assert (factory.__doc__ or "").strip(), f"{kind} {name} has no docstring"
    defaults = catalog.defaults(kind, name)
    assert all(isinstance(k, str) for k in defaults)


@pytest.mark.parametrize("kind, name", [e for e in ENTRIES if e not in REQUIRED])
def test_entry_is_created_with_its_defaults_and_names_unknown_parameters(kind, name):
    obj = featurepipe.create(kind, name)
    assert obj is not None
    with pytest.raises(ValueError, match="unknown parameter 'no_such_param'"):
        featurepipe.create(kind, name, no_such_param=1)


@pytest.mark.parametrize("kind, name", [e for e in ENTRIES if e not in REQUIRED])
def test_every_entry_is_a_stage_that_keeps_its_parameters(kind, name):
    obj = featurepipe.create(kind, name)
    assert isinstance(obj, Stage) and obj.kind == kind and obj.name in featurepipe.list(kind)
    params = obj.get_params(deep=False)
    signature = inspect.signature(type(obj).__init__).parameters.values()
    names = {p.name for p in signature if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    assert set(params) == names  # scikit-learn's convention: __init__ only stores its parameters
    assert all(params[n] is getattr(obj, n) for n in names)


def test_the_old_per_kind_helpers_warn_and_delegate():
    with pytest.warns(FutureWarning, match=r"featurepipe.list\('extractor'"):
        assert featurepipe.list_extractors("h*") == ["hog", "hsv_hist"]
    with pytest.warns(FutureWarning, match="create_extractor is deprecated"):
        assert featurepipe.create_extractor("hog").name == "hog"


def test_presets_and_unknown_names():
    assert featurepipe.create("optimizer", "momentum").momentum == 0.9
    assert featurepipe.create("optimizer", "momentum", momentum=0.5).momentum == 0.5
    with pytest.raises(ValueError, match="unknown optimizer 'adadelta'; registered: adagrad"):
        featurepipe.create("optimizer", "adadelta")
    with pytest.raises(ValueError, match="unknown kind"):
        featurepipe.list("no_such_kind")


def test_registering_a_taken_name_or_the_wrong_kind_is_refused():
    registry = Registry()

    @registry.register("extractor", "x")
    class X:
        kind = "extractor"

    with pytest.raises(ValueError, match="already registered"):
        registry.register("extractor", "x", type("Y", (), {}))
    with pytest.raises(ValueError, match="is a extractor, not a head"):
        registry.register("head", "x2", X)
    assert registry.name_of("extractor", X) == "x" and REGISTRY is not registry


def test_nested_parts_show_in_the_deep_parameters_by_name_or_object():
    from sklearn.base import clone

    bovw = featurepipe.create("extractor", "bovw", descriptor={"patches": {"size": 5}})
    assert bovw.get_params(deep=True)["descriptor__size"] == 5
    head = featurepipe.create("head", "linear", optimizer="sgd")
    assert head.get_params(deep=True)["optimizer__momentum"] == 0.0
    head.set_params(optimizer__momentum=0.5)  # a part named becomes its object, which takes the setting
    assert head.optimizer.momentum == 0.5 and clone(head).get_params()["optimizer__momentum"] == 0.5
    assert set(head.get_params(deep=False)) <= set(head.get_params(deep=True))
