"""``flexsolver app``: the page's handlers against ``flexsolver.transfer.stylize`` with the same
options, no recompilation when a slider moves (counted by ``jax.monitoring`` events), bad uploads
as messages, and the page itself in a real browser (headless Chromium driven by Selenium)."""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request

import jax
import numpy as np
import pytest
from PIL import Image

import flexsolver as fs
from flexsolver import cli
from flexsolver.images import load_image, to_uint8
from flexsolver.transfer import stylize
from flexsolver.vgg import STYLE_LAYERS
from tests.helpers import sample_image

gr = pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e '.[app]'")
from flexsolver import app  # noqa: E402  (needs gradio only when the page is built)

H, W = 64, 64
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")
_events: list[str] = []


def _listen(event: str, _duration: float, **_kwargs) -> None:
    if event in COMPILE_EVENTS:
        _events.append(event)


jax.monitoring.register_event_duration_secs_listener(_listen)


def _save(path, x):
    Image.fromarray(to_uint8(x)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    left = np.zeros((H, W), np.float32)
    left[:, : W // 2] = 1
    (root / "broken.png").write_bytes(b"this is not an image")
    return {
        "content": _save(root / "content.png", sample_image("astronaut", (H, W))),
        "style_a": _save(root / "style_a.png", sample_image("coffee", (48, 48))),
        "style_b": _save(root / "style_b.png", sample_image("chelsea", (48, 64))),
        "left": _save(root / "left.png", left),
        "small_mask": _save(root / "small.png", left[:20, :20]),
        "broken": str(root / "broken.png"),
        "left_array": left,
    }


@pytest.fixture(scope="module")
def studio(vgg):
    return app.Studio.from_checkpoint(None, vgg=vgg)  # the app's default: the shipped solver


def _expected(studio, files, styles=("style_a", "style_b"), **kwargs):
    """``stylize`` on the decoded files, as a user of the library would call it."""
    out = stylize(studio.solver, studio.vgg, load_image(files["content"]), [load_image(files[s]) for s in styles],
                  **kwargs)
    return to_uint8(out)


def _render(studio, files, *, betas=(1.0,) * 5, intensity=1.0, mix=0.5, photo=False, lam=50.0, preserve=False,
            mask_editor=None, mask_file=None, style_b="style_b"):
    return studio.page_render(files["content"], files["style_a"], files.get(style_b), *betas, intensity, mix, photo,
                              lam, preserve, mask_editor, mask_file)


def test_style_weights_generalise_scales(files, vgg):
    params = fs.init_params(jax.random.PRNGKey(1), n=1, l=4, output_scale=2.0)
    x_c, x_s = load_image(files["content"]), load_image(files["style_a"])
    by_scales = stylize(params, vgg, x_c, [x_s], scales=["conv1_1", "conv3_1"], intensity=0.6)
    by_weights = stylize(params, vgg, x_c, [x_s], style_weights={"conv1_1": 1.0, "conv3_1": 1.0}, intensity=0.6)
    np.testing.assert_array_equal(by_scales, by_weights)
    uneven = stylize(params, vgg, x_c, [x_s], style_weights={"conv1_1": 1.5, "conv3_1": 0.2}, intensity=0.6)
    assert np.abs(uneven - by_weights).max() > 1e-3
    for bad, match in (({"conv9_1": 1.0}, "unknown style layers"), ({"conv1_1": -1.0}, ">= 0")):
        with pytest.raises(ValueError, match=match):
            stylize(params, vgg, x_c, [x_s], style_weights=bad)
    with pytest.raises(ValueError, match="not both"):
        stylize(params, vgg, x_c, [x_s], scales=["conv1_1"], style_weights={"conv1_1": 1.0})


def test_slider_moves_match_stylize_and_do_not_recompile(studio, files):
    image, text = _render(studio, files)  # first call at this size: compiles (or loads from the disk cache)
    np.testing.assert_allclose(image, _expected(studio, files, weights=[0.5, 0.5]), atol=1)
    assert "64×64" in text
    moves = [dict(intensity=0.4), dict(betas=(1.5, 0.0, 1.0, 0.3, 1.2), intensity=0.8), dict(mix=0.9)]
    for move in moves:
        before = len(_events)
        moved, text = _render(studio, files, **move)
        assert len(_events) == before, f"a slider move recompiled: {_events[before:]}"
        assert "compilation" not in text
        assert np.abs(moved.astype(int) - image.astype(int)).max() > 2  # the result really changed
        options = dict(move)
        betas = options.pop("betas", (1.0,) * 5)
        mix = options.pop("mix", 0.5)
        np.testing.assert_allclose(moved, _expected(studio, files, weights=[mix, 1 - mix],
                                                    style_weights=dict(zip(STYLE_LAYERS, betas)), **options), atol=1)
    assert len(studio._grams) == 2  # one Gram set per style image, computed once


def test_masks_colour_and_photo_match_stylize(studio, files):
    left = files["left_array"]
    layer = np.zeros((H, W, 4), np.uint8)
    layer[..., 3] = (left * 255).astype(np.uint8)  # what the editor returns: a drawn RGBA layer
    editor = {"background": None, "layers": [layer], "composite": None}
    drawn, _ = _render(studio, files, mask_editor=editor)
    np.testing.assert_allclose(drawn, _expected(studio, files, masks=[left, 1 - left]), atol=1)
    uploaded, _ = _render(studio, files, mask_file=files["left"])
    np.testing.assert_allclose(uploaded, drawn, atol=1)
    one_style, _ = _render(studio, files, mask_file=files["left"], style_b="none")
    np.testing.assert_allclose(one_style, _expected(studio, files, styles=("style_a",), masks=[left]), atol=1)
    colour, _ = _render(studio, files, preserve=True, intensity=0.7)
    np.testing.assert_allclose(colour, _expected(studio, files, weights=[0.5, 0.5], intensity=0.7,
                                                 preserve_color=True), atol=1)
    _render(studio, files, photo=True, lam=20.0)  # compiles the photo path at this size
    before = len(_events)
    photo, _ = _render(studio, files, photo=True, lam=20.0, intensity=0.5)
    assert len(_events) == before, "a slider move in photo mode recompiled"
    np.testing.assert_allclose(photo, _expected(studio, files, weights=[0.5, 0.5], intensity=0.5, photo_lam=20.0),
                               atol=1)


def test_bad_inputs_are_messages_and_the_page_goes_on(studio, files):
    cases = [
        (dict(content="broken"), "cannot read image"),
        (dict(style_a="broken"), "cannot read image"),
        (dict(content=None), "upload a content image"),
        (dict(style_a=None, style_b=None), "at least one style"),
        (dict(mask_file="small_mask"), "masks must have the content's size"),
        (dict(mask_file="broken"), "cannot read image"),
    ]
    for change, match in cases:
        args = {k: files.get(k) for k in ("content", "style_a", "style_b")}
        mask_file = None
        for key, value in change.items():
            if key == "mask_file":
                mask_file = files[value]
            else:
                args[key] = files.get(value) if value else None
        with pytest.raises(gr.Error, match=match):
            studio.page_render(args["content"], args["style_a"], args["style_b"], *(1.0,) * 5, 1.0, 0.5, False, 50.0,
                               False, None, mask_file)
    tall = np.zeros((40, 10, 4), np.uint8)
    tall[..., 3] = 255
    with pytest.raises(gr.Error, match="drawn mask is 10×40"):
        _render(studio, files, mask_editor={"background": None, "layers": [tall], "composite": None})
    with pytest.raises(gr.Error, match="λ must be > 0"):
        _render(studio, files, photo=True, lam=0.0)
    image, _ = _render(studio, files)  # still serving
    assert image.shape == (H, W, 3)


def test_export_and_command_line(studio, files, capsys):
    path, text = studio.page_export(files["content"], files["style_a"], None, *(1.0,) * 5, 1.0, 0.5, False, 50.0,
                                    False, None, None)
    assert path.endswith(".png") and "full size: 64×64" in text
    np.testing.assert_allclose(np.asarray(Image.open(path)), _expected(studio, files, styles=("style_a",)), atol=1)
    assert cli.build_parser().parse_args(["app"]).host == "127.0.0.1"  # this machine only, by default
    for argv, match in ((["app", "--port", "0"], "--port"), (["app", "--max-side", "4"], "--max-side")):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2 and match in capsys.readouterr().err


def _post_file(url: str, size: int) -> int:
    """HTTP status of a multipart upload of ``size`` bytes to Gradio's upload route."""
    boundary = "flexsolverboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n")
    body = head.encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_server_listens_locally_and_bounds_uploads(studio):
    port = _free_port()
    demo = app.launch(studio, port=port, block=False)
    try:
        assert demo.server_name == "127.0.0.1"
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        assert _post_file(url, 1000) == 200
        assert _post_file(url, 26 * 1024 * 1024) == 413  # MAX_FILE_SIZE = 25 MB
    finally:
        demo.close()


# -- the page in a real browser ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1300")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, timeout=180.0, what="the page"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
def test_page_in_a_browser(studio, files, tmp_path, monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    drawn = []  # the masks that reach the handler from the editor
    run = studio.run

    def spy(content, styles, options, mask_drawn=None, mask_file=None, max_side=None):
        drawn.append(mask_drawn)
        return run(content, styles, options, mask_drawn, mask_file, max_side)

    monkeypatch.setattr(studio, "run", spy)
    port = _free_port()
    demo = app.launch(studio, port=port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.get(f"http://127.0.0.1:{port}/")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#content input[type=file]"), what="the upload fields")

        def result():
            """``(src, info text)`` of the shown result, once no request is pending."""
            if driver.find_elements(By.CSS_SELECTOR, ".progress-text, .eta-bar"):
                return None
            imgs = driver.find_elements(By.CSS_SELECTOR, "#result img")
            return (imgs[0].get_attribute("src"), driver.find_element(By.ID, "info").text) if imgs else None

        def settled():
            """The result once no request has been pending for 3 s (uploads queue several renders)."""
            quiet_since = None
            end = time.monotonic() + 240
            while time.monotonic() < end:
                r = result()
                quiet_since = (quiet_since or time.monotonic()) if r else None
                if r and time.monotonic() - quiet_since >= 3.0:
                    return r
                time.sleep(0.5)
            raise AssertionError("timed out waiting for a settled result")

        for eid in ("content", "style_a", "style_b"):
            driver.find_element(By.CSS_SELECTOR, f"#{eid} input[type=file]").send_keys(files[eid])
            time.sleep(1.0)
        src, text = settled()
        assert "64×64" in text, text

        def fetch(url):
            with urllib.request.urlopen(url, timeout=30) as r:
                return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))

        first = fetch(src)
        np.testing.assert_allclose(first, _expected(studio, files, weights=[0.5, 0.5]), atol=1)

        slider = driver.find_element(By.CSS_SELECTOR, "#intensity input[type=range]")
        ActionChains(driver).click_and_hold(slider).move_by_offset(-slider.size["width"] // 4, 0).release().perform()
        intensity = float(driver.find_element(By.CSS_SELECTOR, "#intensity input[type=number]").get_attribute("value"))
        assert 0.2 < intensity < 0.9, intensity
        src2, text2 = _wait(lambda: (r := result()) and r[0] != src and r, what="the result after the slider move")
        moved = fetch(src2)
        assert np.abs(moved.astype(int) - first.astype(int)).max() > 2
        np.testing.assert_allclose(moved, _expected(studio, files, weights=[0.5, 0.5], intensity=intensity), atol=1)
        assert "compilation" not in text2, text2  # the slider move reused the compiled solver

        driver.find_element(By.CSS_SELECTOR, "#mask_accordion button").click()  # open the mask section
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#mask_editor canvas"), what="the mask editor")
        driver.find_element(By.CSS_SELECTOR, "#mask_editor button[aria-label=Brush]").click()
        canvas = max(driver.find_elements(By.CSS_SELECTOR, "#mask_editor canvas"),
                     key=lambda c: c.size["width"] * c.size["height"])
        ActionChains(driver).move_to_element_with_offset(canvas, -30, -30).click_and_hold().move_by_offset(40, 0) \
            .move_by_offset(0, 40).release().perform()  # a stroke on the content: style A there
        time.sleep(1.0)
        drawn.clear()
        driver.find_element(By.ID, "run").click()
        src3, _ = _wait(lambda: (r := result()) and r[0] != src2 and r, what="the result with a drawn mask")
        mask = drawn[-1]
        assert mask is not None and mask.shape == (H, W) and 0.02 < mask.mean() < 0.9, "no drawn mask reached solve"
        mask = app.fit_drawn_mask(mask, (H, W))
        np.testing.assert_allclose(fetch(src3), _expected(studio, files, intensity=intensity, masks=[mask, 1 - mask]),
                                   atol=1)

        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#mask_file input[type=file]"), what="the mask upload")
        driver.find_element(By.CSS_SELECTOR, "#mask_file input[type=file]").send_keys(files["small_mask"])
        _wait(lambda: "masks must have the content's size" in driver.page_source, what="the error message")
    finally:
        driver.quit()
        demo.close()
