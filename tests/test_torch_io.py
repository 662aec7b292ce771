"""The numpy reader of PyTorch files against torch.load on the same files."""

import numpy as np
import pytest

from flexsolver.torch_io import TorchFormatError, load_state_dict
from flexsolver.vgg import default_weights_path


@pytest.mark.torch
def test_legacy_file_matches_torch_load():
    torch = pytest.importorskip("torch")
    path = default_weights_path()
    ours = load_state_dict(path)
    ref = torch.load(path, weights_only=False)
    assert list(ours) == list(ref)
    for name, tensor in ref.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy())


@pytest.mark.torch
def test_zip_file_with_views_and_dtypes(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "transposed": base.t(),  # non-contiguous strides
        "slice": base[1:3, 2:],  # storage offset
        "long": torch.tensor([1, -2, 3], dtype=torch.int64),
        "half": torch.linspace(0, 1, 5, dtype=torch.float16),
        "scalar": torch.tensor(3.5),
    }
    torch.save(state, tmp_path / "z.pth")
    ours = load_state_dict(tmp_path / "z.pth")
    for name, tensor in state.items():
        assert ours[name].dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(ours[name], tensor.numpy())


def test_not_a_torch_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(TorchFormatError):
        load_state_dict(bad)
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "missing.pth")
