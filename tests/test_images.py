import os

import numpy as np
import pytest
from PIL import Image

from flexsolver.images import (
    ImageError,
    center_square,
    decode_image,
    image_grid,
    load_image,
    resize,
    resize_max_side,
    save_image,
    to_uint8,
)


def _save(tmp_path, name, im):
    p = tmp_path / name
    im.save(p)
    return str(p)


def test_load_rgb_exact(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = load_image(_save(tmp_path, "a.png", Image.fromarray(a)))
    assert x.dtype == np.float32 and x.shape == (5, 7, 3)
    np.testing.assert_allclose(x, a / 255.0, atol=1e-6)


def test_load_rgba_drops_alpha(tmp_path):
    im = Image.new("RGBA", (4, 3), (10, 20, 30, 0))
    x = load_image(_save(tmp_path, "a.png", im))
    assert x.shape == (3, 4, 3)
    np.testing.assert_allclose(x[1, 2], np.array([10, 20, 30]) / 255.0, atol=1e-6)


def test_load_greyscale_replicated(tmp_path):
    g = np.array([[0, 128], [200, 255]], np.uint8)
    x = load_image(_save(tmp_path, "g.png", Image.fromarray(g, mode="L")))
    assert x.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_allclose(x[:, :, c], g / 255.0, atol=1e-6)


def test_load_palette_colour(tmp_path):
    im = Image.new("P", (3, 2))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((1, 0), 1)
    im.info["transparency"] = 0
    x = load_image(_save(tmp_path, "p.png", im))
    np.testing.assert_allclose(x[0, 1] * 255, [200, 100, 50], atol=1e-4)
    np.testing.assert_allclose(x[1, 2] * 255, [10, 20, 30], atol=1e-4)


def test_load_16bit(tmp_path):
    a = np.array([[0, 65535], [32768, 1000]], np.uint16)
    im = Image.fromarray(a)
    assert im.mode.startswith("I;16")
    x = load_image(_save(tmp_path, "h.png", im))
    assert x.shape == (2, 2, 3) and x.dtype == np.float32
    assert x[0, 1, 0] == 1.0 and x[0, 0, 2] == 0.0
    np.testing.assert_allclose(x[1, :, 1], [32768 / 65535, 1000 / 65535], rtol=1e-6)


def test_load_cmyk_jpeg(tmp_path):
    x = load_image(_save(tmp_path, "c.jpg", Image.new("CMYK", (4, 4), (0, 0, 0, 0))))
    assert x.shape == (4, 4, 3)
    np.testing.assert_allclose(x, 1.0, atol=2 / 255)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif)
    assert load_image(p).shape == (6, 2, 3)


def test_max_side_downscale_keeps_aspect_never_upscales(tmp_path):
    p = _save(tmp_path, "big.png", Image.new("RGB", (40, 20), (0, 255, 0)))
    x = load_image(p, max_side=10)
    assert x.shape == (5, 10, 3)
    np.testing.assert_allclose(x[..., 1], 1.0, atol=1e-3)
    assert load_image(p, max_side=100).shape == (20, 40, 3)


@pytest.mark.parametrize("kind", ["missing", "empty", "corrupt", "directory"])
def test_load_errors_name_the_path(tmp_path, kind):
    p = tmp_path / f"{kind}.png"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(np.random.default_rng(3).bytes(300))
    elif kind == "directory":
        p.mkdir()
    with pytest.raises(ImageError) as ei:
        load_image(p)
    msg = str(ei.value)
    assert str(p) in msg and "\n" not in msg


def test_truncated_png_is_error(tmp_path):
    p = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageError, match="t.png"):
        load_image(p)


def test_decode_image_bytes(tmp_path):
    p = _save(tmp_path, "a.png", Image.new("RGB", (3, 2), (255, 0, 0)))
    x = decode_image(open(p, "rb").read())
    np.testing.assert_allclose(x[..., 0], 1.0)
    with pytest.raises(ImageError, match="blob"):
        decode_image(b"not an image", name="blob")


def test_resize_shapes_and_constant():
    x = np.full((10, 20, 3), 0.25, np.float32)
    y = resize(x, (5, 7))
    assert y.shape == (5, 7, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, 0.25, atol=1e-5)
    assert resize(x[..., 0], (3, 4), method="lanczos").shape == (3, 4)
    assert resize_max_side(x, 10).shape == (5, 10, 3)
    assert resize_max_side(x, 50) is x
    with pytest.raises(ValueError):
        resize(x, (5, 7), method="nope")


def test_center_square():
    x = np.arange(5 * 3).reshape(5, 3)
    np.testing.assert_array_equal(center_square(x), x[1:4])
    assert center_square(np.zeros((2, 6, 3))).shape == (2, 2, 3)


def test_to_uint8():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 3.0, np.nan])), [0, 0, 128, 255, 255, 0])


def test_save_load_roundtrip_png(tmp_path):
    x = np.random.default_rng(2).random((6, 9, 3), dtype=np.float32)
    p = tmp_path / "out.png"
    save_image(p, x)
    y = load_image(p)
    assert np.abs(y - x).max() <= 0.5 / 255 + 1e-6
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temp file left behind


def test_save_grey_and_jpeg_and_overwrite(tmp_path):
    p = tmp_path / "g.jpg"
    save_image(p, np.full((8, 8), 0.5))
    save_image(p, np.full((8, 8, 1), 0.5))
    np.testing.assert_allclose(load_image(p), 0.5, atol=3 / 255)
    assert sorted(os.listdir(tmp_path)) == ["g.jpg"]


def test_save_accepts_jax_array(tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    save_image(tmp_path / "j.webp", jnp.ones((4, 5, 3)) * 0.2)
    assert load_image(tmp_path / "j.webp").shape == (4, 5, 3)


def test_save_missing_folder_and_bad_extension(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        save_image(tmp_path / "nope" / "a.png", np.zeros((2, 2, 3)))
    assert not (tmp_path / "nope").exists()
    with pytest.raises(ImageError, match="extension"):
        save_image(tmp_path / "a.gif", np.zeros((2, 2, 3)))
    with pytest.raises(ImageError, match="shape"):
        save_image(tmp_path / "a.png", np.zeros((2, 2, 2)))
    assert os.listdir(tmp_path) == []


def test_save_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(ImageError, match="disk full"):
        save_image(tmp_path / "a.png", np.zeros((2, 2, 3)))
    assert os.listdir(tmp_path) == []


def test_image_grid():
    a = np.zeros((10, 20, 3), np.float32)
    b = np.zeros((30, 5, 3), np.float32)
    c = np.zeros((4, 4), np.float32)
    g = image_grid([[a, b], [c]], pad=2, bg=0.5)
    # column widths 20, 5; row heights 30, 4
    assert g.shape == (30 + 4 + 3 * 2, 20 + 5 + 3 * 2, 3) and g.dtype == np.float32
    assert g[2, 2, 0] == 0.0 and g[12, 2, 0] == 0.5  # under a (10 tall), the row is background
    assert g[2 + 30 + 2, 2, 0] == 0.0  # c, top-left of the second row
    with pytest.raises(ValueError):
        image_grid([])
