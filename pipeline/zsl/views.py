"""Which features the validation phase of stage two reads (docs/evaluation.md, "Validation features").

A visual cache may carry the split's validation backbone in one of two forms: a ``validation`` view (the same
rows embedded by that backbone; ``extract-visual --validation-backbone``) or, for imported features, a
``validation_set`` (the validation folder's own rows, labels and partition codes, e.g. SynSE's ``shift_val_5_r``).
:func:`validation_view` turns either into the :class:`~smie.pipeline.zsl.protocol.StageData` the validation phase
runs on; :func:`stored_logits` gives a method gate the backbones' stored class scores of the same views.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.zsl.protocol import StageData

VAL_FEATURES = ("auto", "validation", "main")


def validation_view(vc, data: StageData, split, mode: str, where: str) -> tuple[StageData | None, dict]:
    """The data that the validation phase of ``split`` runs on, and how to label it in the metrics.

    ``mode``: ``validation`` = the cache's validation-backbone features (an error if it has none usable for
    ``split``), ``main`` = the main features (optimistic: the backbone learnt the ``val_unseen`` classes),
    ``auto`` = the first when usable, else the second. Usable = the validation backbone learnt none of the
    split's unseen or ``val_unseen`` classes."""
    if mode not in VAL_FEATURES:
        raise SmieError(f"--val-features must be one of {', '.join(VAL_FEATURES)}, got {mode!r}")
    if vc.validation is None and getattr(vc, "validation_set", None) is not None:
        return validation_set_view(vc, data, split, mode, where)
    view = vc.validation
    usable = view is not None and not set(view.trained_classes) & (set(split.unseen) | set(split.val_unseen))
    if mode == "validation" and not usable:
        why = ("has no validation view (extract-visual --validation-backbone)" if view is None else
               f"has a validation view whose backbone learnt classes of split {split.id}'s val_unseen")
        raise SmieError(f"{where}: {why}")
    if mode == "main" or not usable:
        return None, dict(validation_features="main-backbone", optimistic=True)
    masked = view.masked if data.masked is not None else None
    return (dataclasses.replace(data, features=view.features, masked=masked),
            dict(validation_features="validation-backbone", optimistic=False))


def validation_set_view(vc, data: StageData, split, mode: str, where: str) -> tuple[StageData | None, dict]:
    """:func:`validation_view` for an imported cache: its ``validation_set`` (the validation folder's own rows,
    labels and partition codes, embedded by the backbone trained without ``val_unseen``; no masked views) is the
    validation phase's data. Usable when that backbone learnt none of ``split``'s unseen or ``val_unseen``
    classes and the set has samples of ``split``'s ``val_unseen`` classes (it was made for the cache's split)."""
    vs = vc.validation_set
    leaked = set(vs.trained_classes) & (set(split.unseen) | set(split.val_unseen))
    missing = sorted(set(split.val_unseen) - set(np.unique(vs.labels).tolist()))
    usable = not leaked and not missing
    if mode == "validation" and not usable:
        why = (f"the backbone of its validation set learnt classes {sorted(leaked)[:10]} of split {split.id}"
               if leaked else f"its validation set has no samples of split {split.id}'s val_unseen classes "
                              f"{missing[:10]}")
        raise SmieError(f"{where}: {why}")
    if mode == "main" or not usable:
        return None, dict(validation_features="main-backbone", optimistic=True)
    view = dataclasses.replace(data, features=vs.features, masked=None, labels=vs.labels, partition=vs.partition,
                               sample_ids=vs.sample_ids)
    return view, dict(validation_features="validation-set", optimistic=False)


def stored_logits(vc, val_data: StageData | None) -> Mapping[str, Any]:
    """The backbones' stored class scores by view (``main``; ``validation`` when the validation phase reads the
    cache's ``validation_set``), for a GZSL gate whose seen expert is the backbone (MSF's, as its code does)."""
    vs = getattr(vc, "validation_set", None)
    own = val_data is not None and vs is not None and val_data.features is vs.features
    return MappingProxyType({"main": getattr(vc, "logits", None), "validation": vs.logits if own else None})
