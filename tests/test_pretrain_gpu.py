"""Pretraining and feature extraction on CUDA (bf16 autocast, pinned memory); never run by CI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smie.features.skeletons import SkeletonSet, write_skeletons
from smie.pipeline.visual.backbones import load_backbone
from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone, resume_path

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    K, per, T, V, M = 10, 40, 50, 25, 2
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), per)
    t = np.linspace(0, 2 * np.pi, T)
    data = rng.normal(scale=0.3, size=(K * per, 3, T, V, M)).astype(np.float32)
    data[:, 0] += np.sin(np.outer(labels + 1, t))[:, :, None, None].astype(np.float32)
    path = tmp_path_factory.mktemp("gpu") / "sk.h5"
    write_skeletons(path, SkeletonSet(data, labels, np.full(K * per, T, np.int32),
                                      tuple(f"s{i}" for i in range(K * per)), tuple(f"c{k}" for k in range(K)),
                                      "ntu-25", "synthetic", {}), {})
    return path


@pytest.mark.parametrize("arch,size", [("stgcn", "small"), ("shiftgcn", "standard")])
def test_cuda_pretraining_learns_seen_classes_and_resumes(cache, arch, size):
    out = cache.with_name(f"{arch}.pt")
    cfg = PretrainConfig(skeletons=cache, split="random:3:seed=1", out=out, arch=arch, size=size, epochs=12,
                         batch_size=32, device="cuda", progress=False, num_workers=2)

    class Stop(Exception):
        pass

    def stop(epochs_done, _):
        if epochs_done == 6:
            raise Stop

    with pytest.raises(Stop):
        pretrain_backbone(cfg, on_epoch=stop)
    assert resume_path(out).exists()
    result = pretrain_backbone(cfg)
    assert result.resumed_from == 6 and len(result.history) == 12
    assert result.best_val_acc > 0.5, result.history  # 7 seen classes: chance is 0.14
    model, info = load_backbone(out, "cuda")
    x = torch.randn(4, 3, 50, 25, 2)
    with torch.no_grad():
        on_gpu = model(x.cuda()).float().cpu()
        on_cpu = load_backbone(out, "cpu")[0](x)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=2e-2, atol=2e-2)
