"""The prior-training command (training/train_priors.py, outside the package) on tiny runs."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import train_priors  # noqa: E402

from napari_scoredvi.engine.priors.models import build_prior  # noqa: E402
from napari_scoredvi.engine.priors.storage import unpack_state  # noqa: E402


def _images(folder: Path, rgb: bool, n: int = 4) -> Path:
    import imageio.v3 as iio

    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(n):
        base = 0.5 + 0.4 * np.sin(xx / (3 + i)) * np.cos(yy / 5)
        im = np.stack([base, base[::-1], base.T], -1) if rgb else base
        iio.imwrite(folder / f"{i}.png", np.clip(255 * im + rng.normal(0, 2, im.shape), 0, 255).astype(np.uint8))
    return folder


@pytest.mark.parametrize("channels", [1, 3])
def test_a_tiny_run_writes_priors_of_the_asked_channels_and_resumes(tmp_path, channels):
    data = _images(tmp_path / "data", rgb=channels == 3)
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--channels", str(channels), "--holdout", "1",
            "--steps-shared", "2", "--steps-each", "1", "--batch", "2", "--patch", "32", "--width", "8",
            "--levels", "2", "--threads", "1", "--eval-every", "1", "--ckpt-every", "1"]
    train_priors.main(args)
    weights = torch.load(out / ("gray.pt" if channels == 1 else "color.pt"), weights_only=True)
    prior = build_prior(weights["config"])
    prior.load_state_dict({k: v.float() for k, v in weights["prior0"].items()})
    assert prior(torch.rand(1, channels, 32, 32)).shape == (1, channels, 32, 32)
    # the held-out image is the test set: a curve point per step of each stage
    assert len((out / "curve.jsonl").read_text().splitlines()) == 2 + 3 * 1
    # run again: every stage is finished, nothing is trained, the same weights come out
    train_priors.main(args)
    log = (out / "train.log").read_text()
    assert log.count("shared: step 2/2 ") == 1 and "shared: resumed at step 2" in log


def test_lr_each_sets_the_per_range_step_size_and_leaves_stage_1_alone(tmp_path):
    data = _images(tmp_path / "data", rgb=False)
    out = tmp_path / "run"
    train_priors.main(["--data", str(data), "--out", str(out), "--steps-shared", "2", "--steps-each", "2",
                       "--batch", "2", "--patch", "32", "--width", "8", "--levels", "2", "--threads", "1",
                       "--lr", "1e-3", "--lr-each", "2e-4"])

    def peak(stage: str) -> float:
        return torch.load(out / f"{stage}.ckpt", weights_only=True)["opt"]["param_groups"][0]["initial_lr"]

    assert peak("shared") == pytest.approx(1e-3)
    assert peak("prior0") == pytest.approx(2e-4) and peak("prior2") == pytest.approx(2e-4)


def test_init_from_a_stage_checkpoint_fine_tunes_every_component_from_it(tmp_path):
    data = _images(tmp_path / "data", rgb=False)
    common = ["--data", str(data), "--batch", "2", "--patch", "32", "--width", "8", "--levels", "2", "--threads", "1"]
    train_priors.main([*common, "--out", str(tmp_path / "a"), "--steps-shared", "2", "--steps-each", "1"])
    train_priors.main(["--data", "x", "--out", str(tmp_path / "a"), "--portable-only"])
    shared = torch.load(tmp_path / "a" / "shared.portable.pt", weights_only=True)["model"]
    out = tmp_path / "b"
    train_priors.main([*common, "--out", str(out), "--init", str(tmp_path / "a" / "shared.portable.pt"),
                       "--export-now"])  # no step: the components are the checkpoint's weights
    weights = torch.load(out / "gray.pt", weights_only=True)
    assert weights["config"]["levels"] == 2 and weights["config"]["width"] == 8
    for k in range(3):
        for name, value in shared.items():
            torch.testing.assert_close(weights[f"prior{k}"][name], value.half())


def test_mix_channels_correlates_colour_noise_and_keeps_each_channels_variance():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, 3, 32, 32, generator=gen)
    untouched = train_priors.mix_channels(z, 0.0, gen)
    torch.testing.assert_close(untouched, z)
    mixed = train_priors.mix_channels(z, 1.0, gen)
    flat = mixed.transpose(0, 1).reshape(3, 64, -1)  # channel, patch, pixels
    var = flat.var(dim=2)
    assert ((var - 1).abs() < 0.15).all()  # every channel of every patch keeps unit variance
    corr = torch.stack([torch.corrcoef(flat[:, i]) for i in range(64)])
    off = corr[:, [0, 0, 1], [1, 2, 2]].abs()
    assert off.max() > 0.6 and (off > 0.2).float().mean() > 0.5  # across channels, strongly for many


def test_pack_rewrites_a_float16_weights_file_smaller_and_with_nearly_the_same_output(tmp_path):
    net = build_prior({"arch": "unet", "channels": 1, "width": 16, "levels": 2})
    path = tmp_path / "gray.pt"
    torch.save({"config": net.config(), "ranges_8bit": torch.tensor([[0, 20]]),
                "prior0": {n: t.half() for n, t in net.state_dict().items()}}, path)
    before = path.stat().st_size
    train_priors.main(["--data", "x", "--out", "x", "--pack", str(path)])
    assert path.stat().st_size < 0.75 * before
    packed = torch.load(path, weights_only=True)
    assert any(t.dtype == torch.int8 for t in packed["prior0"].values())
    unpacked = build_prior(packed["config"])
    unpacked.load_state_dict(unpack_state(packed["prior0"]))
    net.load_state_dict({n: t.half().float() for n, t in net.state_dict().items()})
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert (unpacked(x) - net(x)).abs().max() < 0.02 * net(x).abs().max()


def test_constant_prob_sets_the_share_of_constant_noise():
    clean = torch.rand(400, 1, 16, 16)

    def constant_share(**kw) -> float:
        std = train_priors.noise_std_map(clean, 0.05, 0.2, torch.Generator().manual_seed(0), **kw)
        return float((std.flatten(1).std(1) < 1e-7).float().mean())

    assert constant_share(constant_prob=1.0) == 1.0
    assert 0.75 < constant_share(constant_prob=0.9) < 0.97
    assert 0.25 < constant_share() < 0.42  # a third by default
