"""Semantic checks of a config against the registered stages and the data set's listing, run before any
extraction: a config is refused (``ConfigError``, one line naming the key) for what would otherwise fail
after the extraction, or allocate more than the machine has.

The rules are the stages' own (``validate_params``, ``Normalization.from_spec``, ``make_splits``); this
module only applies them to every value a config names and adds the memory estimates (``limits.py``).
"""
from __future__ import annotations

import numpy as np

from .config import Config, ConfigError, HeadConfig, TrainConfig
from .datasets.sources import Dataset
from .limits import quote, refuse_oversize

#: Parameters of data-driven extractors that give their vocabulary size (codebook words, Gaussians).
VOCABULARY_PARAMS = ("n_words", "n_gaussians")
#: The first items tried for an image to measure the features' width on.
SAMPLE_TRIES = 3


# -- what any command that extracts needs ----------------------------------------------------------------
def check_pipeline(pipeline, key: str, cfg: Config, dataset: Dataset) -> int | None:
    """Refuse codebooks and chunks of ``pipeline`` (at config key ``key``) that exceed the machine's memory;
    returns the features' width (a lower bound for data-driven extractors), or None when no image of the
    data set could be read to measure it."""
    image = sample_image(dataset, cfg.run.max_pixels)
    leaves = list(_leaves(pipeline.extractor, f"{key}.extractor"))
    widths = [_leaf_width(leaf, leaf_key, pipeline, image) for leaf, leaf_key, _ in leaves]
    if image is None or None in widths:
        return None
    width = sum(_through(chains, w) for (_, _, chains), w in zip(leaves, widths))
    rows = cfg.run.chunk_size
    refuse_oversize("run.chunk_size", f"{rows} rows of {width} float32 features", rows * width * 4)
    return width


def check_augment(steps, key: str) -> None:
    """Every augmentation step must be a registered preprocessing step with valid parameters."""
    for i, spec in enumerate(steps):
        built_step(spec, f"{key}[{i}]")


def required_pipeline(cfg: Config):
    """The config's ``pipeline`` section; refused when missing (a bench config has its own under ``bench``)."""
    if cfg.pipeline is None:
        raise ConfigError("pipeline: missing (this command needs a pipeline: preprocess steps and an extractor)")
    return cfg.pipeline


def built_pipeline(spec, key: str):
    """``pipeline.build_pipeline`` of a config's pipeline section; a bad one is a ``ConfigError`` naming its key."""
    from .pipeline import SpecError, build_pipeline

    try:
        return build_pipeline(spec, key)
    except SpecError as e:
        raise ConfigError(str(e)) from None


def built_step(spec, key: str):
    """The preprocessing step ``spec`` (a name or ``{name: params}``) names; a ``ConfigError`` naming ``key``
    when it cannot be built."""
    from .pipeline import SpecError, build_stage

    try:
        return build_stage({spec: {}} if isinstance(spec, str) else spec, key, "preprocess")
    except SpecError as e:
        raise ConfigError(str(e)) from None


def sample_image(dataset: Dataset, max_pixels: int):
    """The first readable image among the first items of ``dataset``, or None."""
    from .datasets.decode import read_image

    for i in range(min(SAMPLE_TRIES, len(dataset))):
        try:
            return read_image(dataset.path(i), max_pixels)
        except (OSError, ValueError):
            continue
    return None


def _leaves(extractor, key: str, chains: tuple = ()):
    """(extractor, config key, the block normalisations its features go through, innermost first) of each
    extractor whose features a pipeline concatenates."""
    from .extractors.concat import Concat

    if isinstance(extractor, Concat):
        chains = (extractor.block_normalization(), *chains)
        for i, part in enumerate(extractor.members()):
            yield from _leaves(part, f"{key}.concat.extractors[{i}]", chains)
    else:
        yield extractor, f"{key}.{extractor.name}", chains


def _through(chains, width: int) -> int:
    """The width of a leaf's block after its concat block normalisations (a kernel map widens it)."""
    for chain in chains:
        width = chain.n_outputs(width)
    return width


def _leaf_width(extractor, key: str, pipeline, image) -> int | None:
    """The width of one extractor's features: a dry transform of one image when it needs no fit; else the
    pooled encoding's (cells x the encoding's values per cell), after refusing a vocabulary too big to hold."""
    if extractor.requires_fit:
        return _vocabulary_width(extractor, key)
    if image is None:
        return None
    try:
        return int(extractor.features(pipeline.prepare([image])).shape[1])
    except MemoryError:
        raise ConfigError(f"{key}: the features of one {image.shape[1]}x{image.shape[0]} image would need more "
                          f"memory than this machine has") from None
    except ValueError:  # an image the extractor refuses: reported per file by the extraction, as before
        return None


def _vocabulary_width(extractor, key: str) -> int:
    """Refuse a vocabulary of ``words x descriptor length`` float32 values beyond the machine's memory;
    returns the features' width (0 for an extractor without a known vocabulary size)."""
    name = next((p for p in VOCABULARY_PARAMS if hasattr(extractor, p)), None)
    if name is None:
        return 0
    words = getattr(extractor, name)
    length = extractor.n_components if extractor.projection == "pca" else extractor._part("descriptor").n_features
    refuse_oversize(f"{key}.{name}", f"{words} words of {length}-d descriptors", words * length * 4)
    return extractor._part("encoding").cell_width(words, length) * sum(g * g for g in extractor.pyramid)


# -- what training needs ---------------------------------------------------------------------------------
def check_heads(heads: list[HeadConfig]) -> None:
    """``check_head`` of every head, in the config's order (``fitting.named_heads`` resolved their models)."""
    import featurepipe.heads  # noqa: F401  (registers the heads)
    from .core import REGISTRY

    for i, head in enumerate(heads):
        if head.late is None:
            check_head(i, head, REGISTRY.get("head", head.model))


def check_head(index: int, head: HeadConfig, head_class) -> None:
    """Every value of every parameter of head ``index`` (each value of a grid, with the others at their first
    value) must pass the head's ``validate_params``; its normalisers must be registered."""
    from .core import ParamError

    check_normalize(head.normalize, f"heads[{index}].normalize")
    try:
        values = _grid_values(head_class, head.params)
        first = dict(reversed(values))  # each parameter's first value
        for name, value in values:
            head_class(**{**first, name: value}).validate_params()
    except ParamError as e:
        raise ConfigError(f"heads[{index}].params.{e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"heads[{index}].params: {e}") from None


def check_class_weights(heads: list[HeadConfig], classes: list) -> None:
    """Every label of a ``class_weight`` dict (each of a grid's) must be a class of the data set."""
    import featurepipe.heads  # noqa: F401  (registers the heads)
    from .core import REGISTRY

    for i, head in enumerate(heads):
        if head.late is not None:
            continue
        for name, value in _grid_values(REGISTRY.get("head", head.model), head.params):
            if name != "class_weight" or not isinstance(value, dict) or not classes:
                continue
            unknown = [label for label in value if label not in classes]
            if unknown:
                raise ConfigError(f"heads[{i}].params.class_weight: {unknown[0]!r} is not a class of the data set "
                                  f"(classes: {', '.join(map(repr, classes))})")


def check_networks(heads: list[HeadConfig], width: int, n_classes: int) -> None:
    """Refuse a head whose weights for ``width`` features (every value of its grids) exceed the memory."""
    import featurepipe.heads  # noqa: F401  (registers the heads)
    from .core import REGISTRY

    for i, head in enumerate(heads):
        if head.late is not None:
            continue
        head_class = REGISTRY.get("head", head.model)
        for name, value in _grid_values(head_class, head.params) + [(None, None)]:
            layers = head_class(**({name: value} if name else {}))._build_network(width, n_classes).layer_sizes
            weights = sum((a + 1) * b for a, b in zip(layers, layers[1:]))
            key, what = (f"heads[{i}].params.{name}", quote(value)) if name else (f"heads[{i}].model", head.model)
            refuse_oversize(key, f"{what} on {width} features ({weights} float32 weights)", weights * 4)


def check_normalize(spec, key: str) -> None:
    """Every normaliser chain of ``spec`` must name registered normalisers with valid parameters."""
    from .normalize import Normalization
    from .selection import normalization_options

    for option in normalization_options(spec):
        try:
            Normalization.from_spec(option, key)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def check_selection(train: TrainConfig, dataset: Dataset) -> None:
    """The validation splits ``train`` asks for must exist for the training items the listing found (folds
    against the smallest class, a holdout against the validation fraction)."""
    from .selection import make_splits

    if dataset.splits is None or dataset.labels is None:
        return
    labels = np.asarray(dataset.subset("train").labels)
    if len(labels) == 0:
        raise ConfigError("dataset: the training split has no images")
    try:
        make_splits(labels, train.selection, train.validation_fraction, train.folds, train.seed)
    except ValueError as e:
        message = str(e)
        if not message.startswith("train."):  # scikit-learn's, on a holdout split it cannot make
            message = (f"train.validation_fraction: {train.validation_fraction} of {len(labels)} training images "
                       f"leaves no split to fit and validate on ({message})")
        raise ConfigError(message) from None


def check_extract(cfg: Config, dataset: Dataset) -> int | None:
    """``featurepipe extract``: the pipeline's memory; returns the features' width (see ``check_pipeline``)."""
    return check_pipeline(built_pipeline(required_pipeline(cfg), "pipeline"), "pipeline", cfg, dataset)


def check_train(cfg: Config, dataset: Dataset, heads: list[HeadConfig]) -> None:
    """``featurepipe train``: each pipeline (the config's, a head's own), the ``train`` settings and the heads'
    networks, on ``dataset``; the members of late fusions."""
    check_heads(heads)
    check_class_weights(heads, dataset.classes)
    fused = {head.name: head.late is not None for head in heads}
    groups: dict[str, list[HeadConfig]] = {}
    for i, head in enumerate(heads):
        if head.late is not None:
            check_late(head.late, f"heads[{i}].late", fused, "head")
        else:
            groups.setdefault("pipeline" if head.pipeline is None else f"heads[{i}].pipeline", []).append(head)
    for key, group in groups.items():
        sub = cfg.for_head(group[0])
        width = check_pipeline(built_pipeline(required_pipeline(sub), key), key, sub, dataset)
        _check_training(cfg.train, "train", dataset, group, width)


def check_late(members: list[str], key: str, fused: dict[str, bool], what: str) -> None:
    """The members of a late fusion at config key ``key``: two to ``fusion.MAX_MEMBERS`` distinct names of
    ``fused`` (each ``what`` of the config: whether it is a late fusion itself), none a fusion itself."""
    from .fusion import MAX_MEMBERS

    if not 2 <= len(members) <= MAX_MEMBERS:
        raise ConfigError(f"{key}: a late fusion takes 2 to {MAX_MEMBERS} {what}s, not {len(members)}")
    for member in members:
        if member not in fused:
            raise ConfigError(f"{key}: no {what} named {quote(member)} (the {what}s: {', '.join(map(quote, fused))})")
        if fused[member]:
            raise ConfigError(f"{key}: {quote(member)} is a late fusion itself; fuse the {what}s it fuses instead")
        if members.count(member) > 1:
            raise ConfigError(f"{key}: names {quote(member)} twice")


def check_bench(cfg: Config, dataset: Dataset, heads: list[HeadConfig]) -> None:
    """``featurepipe bench``: each pipeline of the matrix with its own settings and the heads paired with it;
    the members of late fusions."""
    for i, head in enumerate(heads):
        if head.late is not None or head.pipeline is not None:
            raise ConfigError(f"heads[{i}]: a bench pairs its heads with bench.pipelines; fuse pipelines there "
                              f"(bench.pipelines.NAME.late) rather than heads")
    check_heads(heads)
    check_class_weights(heads, dataset.classes)
    fused = {name: entry.late is not None for name, entry in cfg.bench.pipelines.items()}
    for name, entry in cfg.bench.pipelines.items():
        key = f"bench.pipelines.{name}"
        if entry.late is not None:
            check_late(entry.late, f"{key}.late", fused, "pipeline")
            continue
        width = check_pipeline(built_pipeline(entry.pipeline(), key), key, cfg, dataset)
        check_normalize(entry.normalize, f"{key}.normalize")
        paired = [h for h in heads if entry.heads is None or h.name in entry.heads]
        _check_training(entry.train(cfg.train), "train" if entry.augment is None else key, dataset, paired, width)


def _check_training(train: TrainConfig, key: str, dataset: Dataset, heads: list[HeadConfig], width) -> None:
    """Normalisers, augmentation steps (under ``key``), validation splits and, with the features' ``width``
    known, the heads' weights."""
    check_normalize(train.normalize, "train.normalize")
    check_augment(train.augment, f"{key}.augment")
    check_selection(train, dataset)
    if width is not None:
        check_networks(heads, width, len(dataset.classes))


def _grid_values(head_class, params: dict) -> list:
    """(parameter name, value) of every value of every parameter's grid, in order (``auto`` left out: the
    head's own grid): each value is checked once, never the whole product."""
    from .core import ParamError
    from .heads.grid import grid_values

    defaults = head_class().get_params(deep=False)
    values = []
    for name, value in params.items():
        if value != "auto":
            axis = grid_values(value, defaults.get(name))
            if not axis:
                raise ParamError(f"{name}: an empty grid")
            values += [(name, v) for v in axis]
    return values
