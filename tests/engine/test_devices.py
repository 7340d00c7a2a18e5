import pytest
import torch

from napari_scoredvi.engine import devices
from napari_scoredvi.engine.devices import available_devices, describe_device, resolve_device

HAS_MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def test_auto_gives_a_device_that_works_here():
    dev = resolve_device("auto")
    assert isinstance(dev, torch.device)
    assert (torch.ones(3, device=dev) * 2).sum().item() == 6.0  # a tensor can be made and used there
    assert available_devices()[-1] == "cpu"


@pytest.mark.parametrize("cuda,mps,expected", [(False, False, "cpu"), (False, True, "mps"), (True, False, "cuda"),
                                               (True, True, "cuda")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(devices, "_mps_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("AUTO ") == torch.device(expected)


def test_cpu_always_works():
    for name in ("cpu", " CPU ", torch.device("cpu")):
        assert resolve_device(name) == torch.device("cpu")


@pytest.mark.parametrize("threads,expected", [(1, "cpu (1 thread)"), (2, "cpu (2 threads)"), (8, "cpu (8 threads)")])
def test_describe_device_names_the_cpu_threads(monkeypatch, threads, expected):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert describe_device(torch.device("cpu")) == expected


@pytest.mark.parametrize("bad", ["tpu", "gpu", "", 3])
def test_unknown_device_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps|must be one of") as err:
        resolve_device(bad)
    assert repr(bad) in str(err.value)


def test_absent_cuda_is_a_clear_error_naming_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(RuntimeError, match=f"device '{name}' was requested but torch sees no CUDA GPU"):
            resolve_device(name)


def test_a_gpu_index_beyond_those_here_is_an_error_naming_it():
    """On every machine: 'cuda:99' is either no CUDA at all or an index past the GPUs present."""
    with pytest.raises(RuntimeError, match="'cuda:99'"):
        resolve_device("cuda:99")


@pytest.mark.skipif(HAS_MPS, reason="this machine has MPS")
def test_absent_mps_is_a_clear_error():
    with pytest.raises(RuntimeError, match="'mps' was requested but MPS is not available"):
        resolve_device("mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_resolves_and_is_described_by_its_name():
    dev = resolve_device("cuda")
    assert dev.type == "cuda"
    assert torch.cuda.get_device_name(dev) in describe_device(dev)
