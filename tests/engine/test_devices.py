import pytest
import torch

from napari_scoredvi.engine.devices import available_devices, resolve_device


def test_auto_picks_best_available():
    assert resolve_device("auto") == torch.device(available_devices()[0])
    assert available_devices()[-1] == "cpu"


def test_cpu_always_works():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(torch.device("cpu")).type == "cpu"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.skipif(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
                    reason="this machine has MPS")
def test_absent_mps_is_a_clear_error():
    with pytest.raises(RuntimeError, match="MPS is not available"):
        resolve_device("mps")
