"""Baselines trained on the same cached features as SMIE, so every published comparison reruns on identical inputs.

``METHODS`` maps a method name to its ``nn.Module`` class; every class is built as ``cls(visual_dim, sem_dim,
**options)`` and has ``loss(batch)``, ``finalize(train, class_sem)`` and ``scores(visual (N, D), class_sem (K, E))
-> (N, K)`` (docs/architecture.md). Class attributes give per-method defaults used by
:mod:`smie.pipeline.zsl.baselines.run`: ``default_lr``, ``default_epochs`` (or ``cycles``/``cycle_length`` in steps for
the SynSE-style generative methods) and ``default_kinds`` (the semantic kinds a method needs, when it is not
the run's).
"""
from __future__ import annotations

import inspect

from smie.features.store import SmieError
from smie.pipeline.zsl.baselines.cadavae import CADAVAE
from smie.pipeline.zsl.baselines.devise import DeViSE
from smie.pipeline.zsl.baselines.jpose import JPoSE
from smie.pipeline.zsl.baselines.msf import MSF
from smie.pipeline.zsl.baselines.relationnet import RelationNet
from smie.pipeline.zsl.baselines.revise import ReViSE
from smie.pipeline.zsl.baselines.synse import SynSE
from smie.pipeline.zsl.estimator import SMIEEstimator
from smie.pipeline.zsl.fusion import SMIEFusion


class SMIE(SMIEEstimator):
    """SMIE with the temporal constraint (F's estimator), under the baselines' name."""

    default_lr = 1e-5
    default_epochs = 100
    uses_masked = True


class SMIENoTemporal(SMIEEstimator):
    """SMIE without the temporal constraint: global mutual information only (the paper's Table 5 ablation)."""

    default_lr = 1e-5
    default_epochs = 100
    uses_masked = False

    def __init__(self, visual_dim: int, sem_dim: int, **options):
        accepted = set(inspect.signature(SMIEEstimator.__init__).parameters) - {"self", "visual_dim", "sem_dim"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise SmieError(f"method SMIENoTemporal has no option(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(accepted - {'temporal'}))})")
        if options.get("temporal", False):
            raise SmieError("method SMIENoTemporal is SMIE without the temporal constraint: temporal must be False")
        options["temporal"] = False
        super().__init__(visual_dim, sem_dim, **options)


METHODS: dict[str, type] = {
    "devise": DeViSE,
    "relationnet": RelationNet,
    "revise": ReViSE,
    "jpose": JPoSE,
    "cadavae": CADAVAE,
    "synse": SynSE,
    "msf": MSF,
    "smie": SMIE,
    "smie-notemporal": SMIENoTemporal,
    "smie-fusion": SMIEFusion,
}
