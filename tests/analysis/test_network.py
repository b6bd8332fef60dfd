"""The network module's inference helpers (no shipped weights needed)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _with_batch_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """Batch norms with running statistics and affine weights far from the identity, as
    after training, so that folding them is a real change of the convolutions."""
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return net.eval()


def test_folding_batch_norms_keeps_every_output_and_leaves_the_original_alone() -> None:
    from workstation.analysis.network import TriageNet, fold_batch_norms

    net = _with_batch_statistics(TriageNet(decoder_width=16, decoder_merge_convs=True))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batch_norms(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    grey = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        exact, fast = net(grey), folded(grey)
    for name in ("class_logits", "plane_logits", "mask_logits", "features"):
        a, b = getattr(exact, name), getattr(fast, name)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max())), name


def test_reference_network_gives_pooled_features_of_a_shrunk_input() -> None:
    from workstation.analysis.network import ReferenceNet, fold_batch_norms

    net = _with_batch_statistics(ReferenceNet(64))
    grey = torch.rand(3, 1, 160, 160, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        features = net(grey)
        assert features.shape == (3, 1280)
        net.input_size = 32  # another size: another picture for the backbone
        assert not torch.allclose(net(grey), features)
        net.input_size = 64
        assert torch.allclose(fold_batch_norms(net)(grey), features, rtol=1e-4,
                              atol=1e-4 * float(features.abs().max()))
