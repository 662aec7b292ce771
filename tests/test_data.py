import io
import warnings

import numpy as np
import pytest
from PIL import Image

import flexsolver.data as data
from flexsolver.data import DataError, TrainBatches, fixed_pairs, load_square

SIZE = 16
BETA_ON = np.float32(1 / 0.9)


def _pattern(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """3 good images of different kinds and sizes + 1 corrupt file."""
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(_pattern(30, 40, 0)).save(root / "a_rgb.jpg", quality=95)
    Image.fromarray(_pattern(50, 20, 1)[..., 0], mode="L").save(root / "sub" / "b_grey.png")
    rgba = np.concatenate([_pattern(33, 33, 2), np.full((33, 33, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(root / "c_rgba.png")
    (root / "d_bad.jpg").write_bytes(np.random.default_rng(9).bytes(500))
    (root / "notes.txt").write_text("not an image")
    good = [root / "a_rgb.jpg", root / "sub" / "b_grey.png", root / "c_rgba.png"]
    return root, good


def _batches(source, n, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = TrainBatches(source, SIZE, 4, **kw)
    with it:
        return it, [next(it) for _ in range(n)]


def test_load_square_crops_centre_and_resizes():
    x = np.zeros((20, 40, 3), np.uint8)
    x[:, 10:30] = 255  # the centre square is all white
    y = load_square(x, 8)
    assert y.shape == (8, 8, 3) and y.dtype == np.uint8
    assert (y == 255).all()
    assert load_square(np.full((5, 9), 0.5, np.float32), 3).shape == (3, 3, 3)


def test_folder_batches(folder):
    root, good = folder
    with pytest.warns(UserWarning, match="d_bad.jpg") as rec:
        it = TrainBatches(f"folder:{root}", SIZE, 4, seed=0, prefetch=2)
    with it:
        assert sum("d_bad.jpg" in str(w.message) for w in rec) == 1
        assert it.num_images == 3
        clean = np.stack([load_square(p, SIZE) for p in good]).astype(np.float32) / 255
        seen_c, seen_s, noise_means, betas = set(), set(), [], []
        for k in range(30):
            b = next(it)
            assert b["step"] == k
            assert b["x_c"].shape == b["x_s"].shape == (4, SIZE, SIZE, 3)
            assert b["x_c"].dtype == b["x_s"].dtype == b["betas"].dtype == np.float32
            assert b["betas"].shape == (4, 5)
            betas.append(b["betas"])
            for key, seen in (("x_c", seen_c), ("x_s", seen_s)):
                for img in b[key]:
                    dev = np.abs(img[None] - clean).reshape(3, -1).max(axis=1)
                    j = int(dev.argmin())
                    assert dev[j] <= 0.1 + 1e-6, dev
                    seen.add(j)
                    noise_means.append((img - clean[j]).mean())
    assert seen_c == seen_s == {0, 1, 2}
    assert abs(np.mean(noise_means)) < 2e-3
    assert np.std(noise_means) < 0.01  # per-image noise is zero mean
    betas = np.stack(betas)
    assert set(np.unique(betas)) <= {np.float32(0), BETA_ON}
    assert 0.8 < (betas == BETA_ON).mean() < 0.97


def test_noise_amplitude_varies_and_is_not_clipped(tmp_path):
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.png")
    _, bs = _batches(str(tmp_path), 5, seed=1)
    x = np.concatenate([b["x_c"] for b in bs] + [b["x_s"] for b in bs])
    amp = np.abs(x - 1.0).reshape(len(x), -1).max(axis=1)
    assert x.max() > 1.0  # not clipped
    assert amp.max() < 0.1 and amp.min() < amp.max() / 2  # a ~ U[0, 0.1) differs per image


def test_resume_is_exact(folder):
    root, _ = folder
    _, full = _batches(f"folder:{root}", 6, seed=5)
    _, resumed = _batches(f"folder:{root}", 2, seed=5, start_step=3)
    _, sync = _batches(f"folder:{root}", 6, seed=5, prefetch=0)
    _, other = _batches(f"folder:{root}", 1, seed=6, start_step=3)
    for key in ("x_c", "x_s", "betas"):
        np.testing.assert_array_equal(resumed[0][key], full[3][key])
        np.testing.assert_array_equal(resumed[1][key], full[4][key])
        np.testing.assert_array_equal(sync[5][key], full[5][key])
        assert not np.array_equal(full[0][key], full[1][key])
    assert resumed[0]["step"] == 3
    assert not np.array_equal(other[0]["x_c"], full[3]["x_c"])


@pytest.mark.parametrize("kind", ["empty", "missing", "prefix", "unreadable", "plain-missing"])
def test_bad_sources(tmp_path, kind):
    src = {
        "empty": f"folder:{tmp_path}",
        "missing": f"folder:{tmp_path / 'nope'}",
        "prefix": "s3:bucket/coco",
        "unreadable": f"folder:{tmp_path}",
        "plain-missing": str(tmp_path / "nope"),
    }[kind]
    if kind == "unreadable":
        (tmp_path / "x.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError) as ei:
            TrainBatches(src, SIZE, 2, seed=0)
    msg = str(ei.value)
    assert "folder:PATH" in msg and "tfds:coco/2014" in msg and "\n" not in msg


def test_plain_directory_is_a_folder_source(folder):
    root, _ = folder
    it, bs = _batches(str(root), 1, seed=0)
    assert it.num_images == 3 and bs[0]["x_c"].shape == (4, SIZE, SIZE, 3)


def test_sharding_is_disjoint(tmp_path):
    levels = [0.1, 0.3, 0.5, 0.7, 0.9]
    for i, v in enumerate(levels):
        Image.new("RGB", (10 + i, 12), (round(v * 255),) * 3).save(tmp_path / f"{i}.png")
    seen = []
    for shard in range(2):
        it, bs = _batches(str(tmp_path), 20, seed=0, shard_index=shard, shard_count=2)
        assert it.num_images == (3, 2)[shard]
        means = np.concatenate([b[k].mean(axis=(1, 2, 3)) for b in bs for k in ("x_c", "x_s")])
        seen.append({int(np.argmin(np.abs(np.array(levels) - m))) for m in means})
    assert seen == [{0, 2, 4}, {1, 3}]
    with pytest.raises(ValueError):
        TrainBatches(str(tmp_path), SIZE, 2, seed=0, shard_index=2, shard_count=2)


def test_thread_errors_reach_the_consumer(folder, monkeypatch):
    root, _ = folder
    real = data._make_batch

    def flaky(pool, step, *a, **kw):
        if step == 2:
            raise RuntimeError("boom at step 2")
        return real(pool, step, *a, **kw)

    monkeypatch.setattr(data, "_make_batch", flaky)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = TrainBatches(str(root), SIZE, 2, seed=0)
    assert next(it)["step"] == 0 and next(it)["step"] == 1
    with pytest.raises(RuntimeError, match="boom"):
        next(it)
    with pytest.raises(RuntimeError, match="boom"):
        next(it)
    it.close()


def test_close_stops_iteration(folder):
    root, _ = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with TrainBatches(str(root), SIZE, 2, seed=0, prefetch=1) as it:
            next(it)
            thread = it._thread
    assert thread is not None and not thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)


def test_fixed_pairs(folder):
    root, good = folder
    clean = np.stack([load_square(p, SIZE) for p in good]).astype(np.float32) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xc, xs = fixed_pairs(str(root), SIZE, 5, seed=3)
        xc2, xs2 = fixed_pairs(str(root), SIZE, 5, seed=3)
        xc1, xs1 = fixed_pairs(str(root), SIZE, 1, seed=3)
    assert xc.shape == xs.shape == (5, SIZE, SIZE, 3) and xc.dtype == np.float32
    np.testing.assert_array_equal(xc, xc2)
    np.testing.assert_array_equal(xs, xs2)
    ids = []
    for x in (xc, xs):
        d = np.abs(x[:, None] - clean[None]).reshape(5, 3, -1).max(axis=2)
        assert (d.min(axis=1) < 1e-6).all()  # exactly a clean image, no noise
        ids.append(d.argmin(axis=1))
    assert (ids[0] != ids[1]).all()
    assert xc1.shape == xs1.shape == (1, SIZE, SIZE, 3)
    assert np.abs(xc1 - xs1).max() > 0.1  # 2 of the 3 images, different ones


# ---------------------------------------------------------------------------------- tfds


def _png(level):
    buf = io.BytesIO()
    Image.new("RGB", (12 + level, 10), (level * 30,) * 3).save(buf, format="PNG")
    return buf.getvalue()


def test_tfds_coco_mock_streams_and_resumes():
    tf = pytest.importorskip("tensorflow")
    tfds = pytest.importorskip("tensorflow_datasets")
    records = [_png(i) for i in range(6)] + [b"not an image"]  # record 6 is undecodable

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kw):
        assert not shuffle_files
        return tf.data.Dataset.from_tensor_slices({"image": tf.constant(records)})

    def levels(b):
        return {int(round(m * 255 / 30)) for k in ("x_c", "x_s") for m in b[k].mean(axis=(1, 2, 3))}

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        with pytest.warns(UserWarning, match="record 6") as rec:
            with TrainBatches("tfds:coco/2014", SIZE, 2, seed=0, reservoir=4) as it:
                full = [next(it) for _ in range(4)]
        assert sum("record 6" in str(w.message) for w in rec) == 1  # warned once, seen twice
        assert it.num_images == 7
        b = full[0]
        assert b["x_c"].shape == b["x_s"].shape == (2, SIZE, SIZE, 3) and b["betas"].shape == (2, 5)
        # window of step k: records [4k, 4k+4) mod 7 (r = 2 * batch = 4, W = 4)
        for k, b in enumerate(full):
            window = {(4 * k + j) % 7 for j in range(4)} - {6}
            assert levels(b) <= window
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with TrainBatches("tfds:coco/2014", SIZE, 2, seed=0, start_step=3, reservoir=4, prefetch=0) as it:
                resumed = next(it)
        for key in ("x_c", "x_s", "betas"):
            np.testing.assert_array_equal(resumed[key], full[3][key])
        xc, xs = fixed_pairs("tfds:coco/2014", SIZE, 2, seed=0)
        assert xc.shape == (2, SIZE, SIZE, 3)
        assert not set(levels({"x_c": xc, "x_s": xs})) & {6}


def test_tfds_auto_mock_greyscale_and_sharding():
    pytest.importorskip("tensorflow")
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        with TrainBatches("tfds:mnist", SIZE, 3, seed=1, shard_index=1, shard_count=2) as it:
            b = next(it)
        assert b["x_c"].shape == (3, SIZE, SIZE, 3)
        np.testing.assert_allclose(b["x_c"][..., 0], b["x_c"][..., 1], atol=0.21)  # grey in, ~grey out
        with pytest.raises(DataError, match="no .image. feature"):
            TrainBatches("tfds:glue/cola", SIZE, 2, seed=0)


def _levels(root, levels, size=(12, 10)):
    root.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(levels):
        Image.new("RGB", size, (round(v * 255),) * 3).save(root / f"{i}.png")
    return f"folder:{root}"


def _nearest(batch_images, levels):
    means = batch_images.mean(axis=(1, 2, 3))
    return {int(np.argmin(np.abs(np.array(levels) - m))) for m in means}


def test_style_source_and_joined_folders(tmp_path):
    """Contents come from `source` only, styles from `style_source` only; ',' joins folders."""
    photos, art = [0.1, 0.2], [0.7, 0.8, 0.9]
    photo_src, art_src = _levels(tmp_path / "p", photos), _levels(tmp_path / "a", art)
    with TrainBatches(photo_src, SIZE, 4, seed=0, style_source=art_src) as it:
        bs = [next(it) for _ in range(10)]
        assert (it.num_images, it.num_style_images) == (2, 3)
    assert set().union(*(_nearest(b["x_c"], photos + art) for b in bs)) == {0, 1}
    assert set().union(*(_nearest(b["x_s"], photos + art) for b in bs)) == {2, 3, 4}
    with TrainBatches(photo_src, SIZE, 4, seed=0, style_source=f"{photo_src},{art_src}") as it:
        styles = set().union(*(_nearest(next(it)["x_s"], photos + art) for _ in range(20)))
        assert it.num_style_images == 5 and styles == {0, 1, 2, 3, 4}
    with pytest.raises(DataError, match="only folder sources"):
        TrainBatches(photo_src, SIZE, 2, seed=0, style_source=f"{art_src},tfds:coco/2014")
    _, xs_joined = fixed_pairs(photo_src, SIZE, 5, seed=0, style_source=f"{photo_src},{art_src}")
    assert _nearest(xs_joined, photos + art) == {0, 1, 2, 3, 4}
    xc, xs = fixed_pairs(photo_src, SIZE, 4, seed=0, style_source=art_src)
    assert _nearest(xc, photos + art) <= {0, 1} and _nearest(xs, photos + art) <= {2, 3, 4}
    assert xs.shape == (4, SIZE, SIZE, 3)


def test_random_crops_flips_and_exact_resume(tmp_path):
    # A horizontal ramp: a crop's mean tells where it was taken, its slope tells a flip.
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32)[None, :, None], (48, 1, 3)).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    kw = dict(seed=2, crop_min=0.5, prefetch=0)
    with TrainBatches(str(tmp_path), SIZE, 4, **kw) as it:
        full = [next(it) for _ in range(6)]
    with TrainBatches(str(tmp_path), SIZE, 4, start_step=4, **kw) as it:
        resumed = [next(it) for _ in range(2)]
    for key in ("x_c", "x_s", "betas"):
        np.testing.assert_array_equal(resumed[0][key], full[4][key])
        np.testing.assert_array_equal(resumed[1][key], full[5][key])
    x = np.concatenate([b[k] for b in full for k in ("x_c", "x_s")])
    slopes = np.sign(x[:, :, -1].mean(axis=(1, 2)) - x[:, :, 0].mean(axis=(1, 2)))
    assert {-1.0, 1.0} <= set(slopes)  # some crops are mirrored
    assert np.std(x.mean(axis=(1, 2, 3))) > 0.03  # crops from different places and scales
    rng = np.random.default_rng(0)
    crops = [data.random_crop(ramp, 8, 0.5, rng) for _ in range(50)]
    assert all(c.shape == (8, 8, 3) and c.dtype == np.uint8 for c in crops)
    # The side is at least half the short side (24 px), so a crop spans ≥ 24/64 of the ramp.
    spans = [abs(int(c[:, -1].mean()) - int(c[:, 0].mean())) for c in crops]
    assert min(spans) >= 0.3 * 255 * 24 / 64
    with pytest.raises(ValueError, match="crop_min"):
        TrainBatches(str(tmp_path), SIZE, 2, seed=0, crop_min=1.5)
