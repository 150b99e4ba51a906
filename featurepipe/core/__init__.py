"""The neutral core every part of featurepipe imports and that imports none of them: the registry,
parameter constraints, the stage base class, image batches and phase timings."""
from .batch import as_batch
from .constraints import (NULL, AnyOf, Boolean, Constraint, Instance, Integer, Options, ParamError, Part, Real,
                          Satisfies, Sequence, check_constraints, require)
from .registry import REGISTRY, Registry, register
from .stage import Stage, Transformer, iter_stages, restore_state, stage_state
from .timing import timed

__all__ = ["NULL", "REGISTRY", "AnyOf", "Boolean", "Constraint", "Instance", "Integer", "Options", "ParamError",
           "Part", "Real", "Registry", "Satisfies", "Sequence", "Stage", "Transformer", "as_batch", "check_constraints",
           "iter_stages", "register", "require", "restore_state", "stage_state", "timed"]
