"""The neutral core every part of featurepipe imports and that imports none of them: the registry,
parameter constraints, the stage base class, image batches and phase timings."""
from .batch import as_batch
from .constraints import (NULL, AnyOf, Boolean, Constraint, Instance, Integer, Options, ParamError, Real, Registered,
                          Satisfies, Sequence, check_constraints, require)
from .registry import REGISTRY, Registry, register
from .stage import Stage, iter_stages, restore_state, stage_state
from .timing import timed

__all__ = ["NULL", "REGISTRY", "AnyOf", "Boolean", "Constraint", "Instance", "Integer", "Options", "ParamError",
           "Real", "Registered", "Registry", "Satisfies", "Sequence", "Stage", "as_batch", "iter_stages", "restore_state", "stage_state", "check_constraints", "register",
           "require", "timed"]
