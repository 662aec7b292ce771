"""``flexsolver app``: a local web page (Gradio) where the solver's run-time controls are sliders.

A content image and one or two styles (the shipped examples are preloaded); one slider per style
scale ``β_l`` (conv1_1 … conv5_1) and a global intensity; the share of style A when two styles
are mixed; a region mask, drawn on the content or uploaded (on = style A, off = style B, or no
style where there is only one); photorealism with its ``λ``; colour preservation. Every result is
:func:`flexsolver.transfer.stylize` with those options: the page adds no image processing of its
own.

Fast enough to drag: the solver is jitted once per image shape (``flexsolver.solve`` takes the
style weights, Grams and masks as arrays, so new values reuse the compiled program), decoded
images and style Grams are kept in small LRU caches (Grams keyed by a hash of the style's pixels),
and contents are worked on at ``working_side`` (default 512) with a "full size" export at up to
``export_side`` (the command's default ``--max-side``, 1024).

Safe to leave open: it listens on 127.0.0.1 by default, uploads are bounded by
:data:`MAX_FILE_SIZE`, requests are queued one at a time (bounded memory), and an unreadable image
or a wrong mask is a message on the page (``gr.Error``), never a traceback; the server goes on.
Gradio is an optional extra: ``pip install 'flexsolver[app]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from flexsolver.inputs import DEFAULT_MAX_SIDE, fit_mask, load_solver, read_content, read_mask
from flexsolver.timing import count_compilations, stopwatch
from flexsolver.vgg import STYLE_LAYERS

WORKING_SIDE = 512  # contents are stylised at this longest side on the page
EXPORT_SIDE = DEFAULT_MAX_SIDE  # "full size" export: capped like the command's --max-side default
MAX_FILE_SIZE = "25mb"  # per upload (Gradio's max_file_size)
BETA_MAX = 1.5  # range of the per-scale sliders
LAM_RANGE = (10.0, 200.0, 10.0)  # photo λ slider: min, max, step (each new λ compiles once: see DESIGN)
CACHE_ENTRIES = 8  # decoded images and style Grams kept per kind
EXAMPLES = ("astronaut.jpg", "great_wave.jpg", "van_gogh_auvers.jpg")  # content, style A, style B
ASPECT_TOLERANCE = 0.02
SOURCES = ("upload", "clipboard")  # no webcam


@dataclass(frozen=True)
class Options:
    """The page's controls. ``betas``: one ``β_l`` per :data:`STYLE_LAYERS`; ``mix``: share of
    style A when two styles are mixed (ignored with a mask); ``lam`` is used only with ``photo``."""

    betas: tuple[float, ...] = (1.0,) * len(STYLE_LAYERS)
    intensity: float = 1.0
    mix: float = 0.5
    photo: bool = False
    lam: float = 50.0
    preserve_color: bool = False


def stylize_kwargs(options: Options, n_styles: int, mask: np.ndarray | None) -> dict:
    """The keyword arguments of :func:`flexsolver.transfer.stylize` for ``options``, ``n_styles``
    (1 or 2) and an optional region mask ``(H,W)`` in [0,1] (on = style A)."""
    if n_styles not in (1, 2):
        raise ValueError(f"give one or two styles, got {n_styles}")
    if len(options.betas) != len(STYLE_LAYERS):
        raise ValueError(f"give one scale weight per style layer ({len(STYLE_LAYERS)}), got {len(options.betas)}")
    if not 0.0 <= options.mix <= 1.0:
        raise ValueError(f"the mix (share of style A) must be in [0, 1], got {options.mix}")
    if options.photo and not options.lam > 0:
        raise ValueError(f"the photorealism λ must be > 0, got {options.lam}")
    kwargs = {
        "style_weights": dict(zip(STYLE_LAYERS, (float(b) for b in options.betas))),
        "intensity": float(options.intensity),
        "photo_lam": float(options.lam) if options.photo else None,
        "preserve_color": bool(options.preserve_color),
    }
    if mask is not None:
        kwargs["masks"] = [mask] if n_styles == 1 else [mask, 1.0 - mask]
    elif n_styles == 2:
        kwargs["weights"] = [float(options.mix), 1.0 - float(options.mix)]
    return kwargs


def drawn_mask(editor_value) -> np.ndarray | None:
    """The region drawn in the mask editor: the union of its layers' opacity, ``(H,W)`` in [0,1];
    None when nothing is drawn. ``editor_value``: Gradio's ``{"background", "layers",
    "composite"}`` with numpy images."""
    if not editor_value:
        return None
    layers = [np.asarray(layer) for layer in editor_value.get("layers") or [] if layer is not None]
    alphas = [layer[..., 3].astype(np.float32) / 255.0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4]
    if not alphas or max(float(a.max()) for a in alphas) == 0.0:
        return None
    return np.max(np.stack(alphas), axis=0)


def fit_drawn_mask(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A drawn mask resized to the content's ``shape``; its aspect must be the content's."""
    from flexsolver import images

    h, w = m.shape
    if abs((h / w) / (shape[0] / shape[1]) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"the drawn mask is {w}×{h} but the content is {shape[1]}×{shape[0]}; draw on the "
                         "content shown in the mask editor (or upload a mask of the content's size)")
    return np.clip(images.resize(m, shape), 0.0, 1.0)


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make: Callable):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def pixel_key(x: np.ndarray) -> str:
    """A hash of an image's pixels and shape (the Gram cache's key)."""
    x = np.ascontiguousarray(x)
    return hashlib.sha1(str(x.shape).encode() + x.tobytes()).hexdigest()


@dataclass
class Studio:
    """The page's state: the solver, VGG, and the caches. ``run`` is the functional entry point
    (raises ``ValueError`` family errors); ``page_render`` / ``page_export`` are Gradio's handlers."""

    solver: object  # a flexsolver.network.Solver (parameters and their gate)
    description: str
    vgg: object = None
    working_side: int = WORKING_SIDE
    export_side: int = EXPORT_SIDE
    _images: _LRU = field(default_factory=lambda: _LRU(CACHE_ENTRIES))
    _grams: _LRU = field(default_factory=lambda: _LRU(CACHE_ENTRIES))
    _out_dir: str | None = None

    def __post_init__(self):
        if self.vgg is None:
            import flexsolver as fs

            self.vgg = fs.load_vgg19()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None = None, **kwargs) -> Studio:
        solver, description = load_solver(checkpoint)
        return cls(solver, description, **kwargs)

    # -- cached inputs -------------------------------------------------------------------------
    def content(self, path, max_side: int, photo: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
        """``read_content`` (the command's downscaling and memory cap), cached by file identity."""
        return self._images.get_or(("content", *_file_id(path), max_side, photo),
                                   lambda: read_content(path, max_side, photo))

    def style(self, path, max_side: int) -> np.ndarray:
        from flexsolver import images

        return self._images.get_or(("style", *_file_id(path), max_side),
                                   lambda: images.load_image(path, max_side=max_side))

    def grams(self, x_s: np.ndarray) -> Mapping:
        """The style's Grams, computed once per distinct image (keyed by :func:`pixel_key`)."""
        import flexsolver as fs

        return self._grams.get_or(pixel_key(x_s), lambda: fs.style_grams(self.vgg, x_s))

    # -- the work ------------------------------------------------------------------------------
    def run(self, content, styles: Sequence, options: Options, mask_drawn=None, mask_file=None,
            max_side: int | None = None) -> tuple[np.ndarray, dict]:
        """Stylises the content file with 1–2 style files; ``mask_drawn``: an ``(h,w)`` array
        (any size of the content's aspect), ``mask_file``: a mask image of the content's size
        (it wins). Returns the image ``(H,W,3)`` in [0,1] and ``{"seconds", "compiles", "size",
        "stored_size"}``."""
        from flexsolver.transfer import stylize

        max_side = self.working_side if max_side is None else max_side
        if not content:
            raise ValueError("upload a content image")
        styles = [s for s in styles if s]
        if not styles:
            raise ValueError("upload at least one style image")
        x_c, stored = self.content(content, max_side, options.photo)
        shape = x_c.shape[:2]
        if mask_file:
            mask = fit_mask(os.path.basename(str(mask_file)), read_mask(mask_file), stored, shape)
        elif mask_drawn is not None:
            mask = fit_drawn_mask(np.asarray(mask_drawn, np.float32), shape)
        else:
            mask = None
        kwargs = stylize_kwargs(options, len(styles), mask)
        x_styles = [self.style(s, max_side) for s in styles]
        with count_compilations() as compiles, stopwatch() as clock:
            # Colour preservation matches each style's luminance to this content: it needs the images.
            style_inputs = x_styles if options.preserve_color else [self.grams(x) for x in x_styles]
            out = stylize(self.solver, self.vgg, x_c, style_inputs, **kwargs)
        info = {"seconds": clock.seconds, "compiles": compiles.count, "size": shape, "stored_size": stored}
        return out, info

    def _options(self, b1, b2, b3, b4, b5, intensity, mix, photo, lam, preserve) -> Options:
        return Options((b1, b2, b3, b4, b5), intensity, mix, bool(photo), lam, bool(preserve))

    def page_render(self, content, style_a, style_b, b1, b2, b3, b4, b5, intensity, mix, photo, lam,
                    preserve, mask_editor, mask_file):
        """Gradio handler: ``(uint8 image, one line of text)``; expected errors become ``gr.Error``."""
        from flexsolver import images

        with page_errors():
            options = self._options(b1, b2, b3, b4, b5, intensity, mix, photo, lam, preserve)
            out, info = self.run(content, [style_a, style_b], options, drawn_mask(mask_editor), mask_file)
            return images.to_uint8(out), self._describe(info, "")

    def page_export(self, content, style_a, style_b, b1, b2, b3, b4, b5, intensity, mix, photo, lam,
                    preserve, mask_editor, mask_file):
        """Gradio handler: the result at full size (up to ``export_side``) as a PNG file path."""
        from flexsolver import images

        with page_errors():
            options = self._options(b1, b2, b3, b4, b5, intensity, mix, photo, lam, preserve)
            out, info = self.run(content, [style_a, style_b], options, drawn_mask(mask_editor), mask_file,
                                 max_side=self.export_side)
            if self._out_dir is None:
                self._out_dir = tempfile.mkdtemp(prefix="flexsolver-app-")
            path = os.path.join(self._out_dir, f"stylized_{info['size'][1]}x{info['size'][0]}.png")
            images.save_image(path, out)
            return path, self._describe(info, "full size: ")

    def page_background(self, content):
        """The content at the working size, as the mask editor's background (draw on it)."""
        from flexsolver import images

        if not content:
            return None
        with page_errors():
            return images.to_uint8(self.content(content, self.working_side)[0])

    def _describe(self, info: dict, prefix: str) -> str:
        h, w = info["size"]
        sh, sw = info["stored_size"]
        text = f"{prefix}{w}×{h} in {info['seconds']:.2f} s ({self.description}"
        if info["compiles"]:
            text += f"; first run of these options at this size: includes {info['compiles']} XLA compilation(s)"
        text += ")"
        if (sh, sw) != (h, w):
            text += f"; the content is {sw}×{sh}, downscaled"
        return text


def _file_id(path) -> tuple:
    st = os.stat(path)  # FileNotFoundError is an expected error (page_errors)
    return os.fspath(path), st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def page_errors():
    """Turns the command's expected errors into ``gr.Error`` (a message on the page)."""
    from flexsolver.images import ImageError
    from flexsolver.vgg import WeightsError

    try:
        yield
    except (ImageError, WeightsError, ValueError, OSError) as e:
        import gradio as gr

        raise gr.Error(" ".join(str(e).split()) or type(e).__name__) from None


def build(studio: Studio):
    """The Gradio page (a ``gr.Blocks``, queued one request at a time)."""
    import gradio as gr

    from flexsolver.shipped import example

    content_path, style_a_path, style_b_path = (str(example(name)) for name in EXAMPLES)
    lo, hi, step = LAM_RANGE
    with gr.Blocks(title="flexsolver", analytics_enabled=False) as demo:
        gr.Markdown("## flexsolver — style transfer with run-time controls\n"
                    "Upload a content and one or two styles; every slider re-solves with the learned solver "
                    f"(contents at most {studio.working_side} px on the page; *Full size* exports at up to "
                    f"{studio.export_side} px). Solver: {studio.description}.")
        upload = {"type": "filepath", "sources": SOURCES, "height": 240}
        with gr.Row():
            content = gr.Image(content_path, label="Content", elem_id="content", **upload)
            style_a = gr.Image(style_a_path, label="Style A", elem_id="style_a", **upload)
            style_b = gr.Image(style_b_path, label="Style B (optional: × clears it)", elem_id="style_b", **upload)
        with gr.Row():
            with gr.Column():
                betas = [gr.Slider(0.0, BETA_MAX, value=1.0, step=0.05, label=f"β {name}", elem_id=f"beta_{name}")
                         for name in STYLE_LAYERS]
                intensity = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Intensity (multiplies every β)",
                                      elem_id="intensity")
                mix = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Mix: share of style A (two styles, no mask)",
                                elem_id="mix")
                with gr.Row():
                    photo = gr.Checkbox(False, label="Photorealism (matting prox)", elem_id="photo")
                    preserve = gr.Checkbox(False, label="Preserve the content's colours", elem_id="preserve")
                lam = gr.Slider(lo, hi, value=50.0, step=step, label="Photorealism λ (each new λ compiles once)",
                                elem_id="lam")
                with gr.Accordion("Region mask: style A where the mask is on, style B elsewhere", open=False,
                                  elem_id="mask_accordion"):
                    mask_editor = gr.ImageEditor(type="numpy", image_mode="RGBA", label="Draw the region of style A",
                                                 brush=gr.Brush(colors=["#ff3366"], color_mode="fixed"),
                                                 sources=(), transforms=(), elem_id="mask_editor")
                    mask_file = gr.Image(label="…or upload a mask (white = style A; the content's size)",
                                         elem_id="mask_file", **{**upload, "height": 160})
            with gr.Column():
                result = gr.Image(type="numpy", format="png", label="Result", interactive=False, elem_id="result",
                                  buttons=["download", "fullscreen"])
                info = gr.Markdown("Press *Stylise* or move a slider.", elem_id="info")
                with gr.Row():
                    run = gr.Button("Stylise", variant="primary", elem_id="run")
                    export = gr.Button(f"Full size (≤ {studio.export_side} px)", elem_id="export")
                exported = gr.File(label="Full-size PNG", elem_id="exported")

        inputs = [content, style_a, style_b, *betas, intensity, mix, photo, lam, preserve, mask_editor, mask_file]
        render = {"fn": studio.page_render, "inputs": inputs, "outputs": [result, info], "trigger_mode": "always_last"}
        run.click(**render)
        for slider in (*betas, intensity, mix, lam):
            slider.release(**render)
        for box in (photo, preserve):
            box.change(**render)
        for image in (style_a, style_b, mask_file):
            image.change(**render)
        content.change(studio.page_background, content, mask_editor).then(**render)
        export.click(studio.page_export, inputs, [exported, info])
        demo.load(studio.page_background, content, mask_editor)
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serves the page; ``block=False`` returns the running ``gr.Blocks`` (tests)."""
    demo = build(studio)
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, share=False,
                inbrowser=False, show_error=False, prevent_thread_lock=not block, quiet=not block)
    return demo
