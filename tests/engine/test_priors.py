from importlib import resources

import pytest
import torch

from napari_scoredvi.engine.priors import load_priors
from napari_scoredvi.engine.priors.models import BiasFreeDnCNN, BiasFreeUNet, build_prior
from napari_scoredvi.engine.priors.storage import pack_state, unpack_state


@pytest.mark.parametrize("name", ["gray.pt", "gray_corr.pt", "color.pt"])
def test_shipped_weights_are_small_and_load_safely(name):
    ref = resources.files("napari_scoredvi.engine.priors").joinpath("weights", name)
    with resources.as_file(ref) as path:
        assert path.stat().st_size < 8 * 2**20  # 3 x 2.17 M parameters, packed: 6.6 MB for the grey sets
        state = torch.load(path, weights_only=True)  # raises on anything but tensors/containers
    assert {"config", "ranges_8bit", "prior0"} <= set(state)


def test_packed_weights_keep_each_kernel_within_half_a_step_of_its_channel():
    gen = torch.Generator().manual_seed(0)
    state = {"big.weight": torch.randn(64, 32, 3, 3, generator=gen) * torch.linspace(0.01, 1, 64).view(-1, 1, 1, 1),
             "small.weight": torch.randn(1, 32, 3, 3, generator=gen)}
    packed = pack_state(state)
    assert packed["big.weight"].dtype == torch.int8 and packed["small.weight"].dtype == torch.float16
    back = unpack_state(packed)
    assert set(back) == set(state) and all(t.dtype == torch.float32 for t in back.values())
    # per output channel: error at most half of that channel's step (its max |w| / 127 / 2)
    step = state["big.weight"].abs().flatten(1).amax(1) / 127
    err = (back["big.weight"] - state["big.weight"]).abs().flatten(1).amax(1)
    assert (err <= step / 2 + 1e-7).all()
    torch.testing.assert_close(back["small.weight"], state["small.weight"].half().float())
    # files written before packing (float16 only) read the same way
    torch.testing.assert_close(unpack_state({"w": state["big.weight"].half()})["w"], state["big.weight"].half().float())


@pytest.mark.parametrize("prior_set", ["independent", "correlated", "colour"])
def test_priors_are_blind_denoisers_that_reduce_gaussian_noise(prior_set):
    priors = load_priors("cpu", prior_set)
    assert len(priors) == 3
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = (0.3 + 0.4 * (xx > 0.5) + 0.2 * torch.sin(8 * yy))[None, None]
    if prior_set == "colour":  # a colour image: R, G, B share the edges, in different proportions
        clean = torch.cat([0.9 * clean, 0.6 * clean + 0.1, 0.3 * clean + 0.2], dim=1)
    for prior in priors:
        lo, hi = prior.noise_range
        sigma = max((lo + hi) / 2, 5 / 255)
        noisy = clean + sigma * torch.randn(clean.shape, generator=g)
        with torch.no_grad():
            out = prior(noisy, sigma)
        assert out.shape == noisy.shape
        assert ((out - clean) ** 2).mean() < 0.5 * ((noisy - clean) ** 2).mean()


@pytest.mark.parametrize("make", [lambda: BiasFreeDnCNN(1, 5, 8), lambda: BiasFreeUNet(1, 8, 3)])
@pytest.mark.parametrize("shape", [(16, 16), (19, 22)])
def test_bias_free_network_is_positively_homogeneous_and_keeps_shape(make, shape):
    torch.manual_seed(0)
    net = make()
    x = torch.rand(1, 1, *shape)
    with torch.no_grad():
        out = net(x)
        assert out.shape == x.shape
        torch.testing.assert_close(net(3.0 * x), 3.0 * out, rtol=1e-4, atol=1e-6)


def test_build_prior_round_trips_config_and_rejects_unknown():
    for net in (BiasFreeDnCNN(1, 5, 8), BiasFreeUNet(1, 8, 2)):
        assert type(build_prior(net.config())) is type(net)
    assert isinstance(build_prior({"channels": 1, "depth": 5, "width": 8}), BiasFreeDnCNN)  # old files
    with pytest.raises(ValueError, match="unknown prior architecture"):
        build_prior({"arch": "transformer"})


def test_multichannel_is_served_channel_by_channel():
    prior = load_priors("cpu")[0]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = prior(x)
        single = prior(x[:, 1:2])
    torch.testing.assert_close(out[:, 1:2], single)


def test_colour_priors_denoise_rgb_jointly_and_refuse_other_channel_counts():
    prior = load_priors("cpu", "colour")[0]
    x = torch.rand(1, 3, 32, 32)
    changed = x.clone()
    changed[:, 0] = torch.rand(32, 32)  # a new red channel
    with torch.no_grad():
        out, out_changed = prior(x), prior(changed)
        assert (out[:, 1] - out_changed[:, 1]).abs().max() > 1e-4  # green reads red too
        with pytest.raises(ValueError, match="3 channels together, got 2"):
            prior(x[:, :2])
    with pytest.raises(ValueError, match="prior_set must be one of"):
        load_priors("cpu", "rgb")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_priors_load_on_cuda():
    assert next(load_priors("cuda")[0].parameters()).is_cuda


@pytest.mark.parametrize("n", [1, 4, 8])
def test_self_ensemble_undoes_each_view(n):
    from napari_scoredvi.engine.api import finish
    from napari_scoredvi.engine.priors import self_ensemble

    x = torch.rand(2, 1, 5, 7)
    torch.testing.assert_close(finish(self_ensemble(lambda v: v**2, x, n)), x**2)  # pointwise: every view agrees
    seen, passes = [], []
    finish(self_ensemble(lambda v: seen.append(v.shape[-2:]) or v, x, n), passes.append)
    assert len(seen) == n and (n < 2 or seen[1] == (7, 5))  # rotated views really are rotated
    assert len(passes) == n  # it yields after each view's pass
