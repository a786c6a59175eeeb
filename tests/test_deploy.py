import pytest
import torch
from torch import nn

import rnlib
from rnlib.deploy import fuse_batchnorm


@pytest.mark.parametrize("name", ["refinenet", "fcn8s", "deeplab-os16"])
def test_folded_model_computes_the_same_without_batch_norm(name):
    model = rnlib.build_model(name, num_classes=3, backbone="resnet18").eval()
    for m in model.modules():  # non-trivial statistics, so that folding has work to do
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.backbone.modules())
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-4, rtol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original is kept"
