"""Speed and accuracy of the matting-Laplacian prox ``(I + 2λℒ)⁻¹`` (SPEC §4.1).

Two modes, both printing markdown tables:

* default: at 256×128, 512×256, 1024×512 (W×H): time to build ℒ, time of the Chebyshev prox
  (jitted, after warm-up), time of scipy's exact sparse solve of the same system
  (``scipy.sparse.linalg.spsolve``, SuperLU, as FastPhotoStyle does), the relative error
  between them and the speed ratio;
* ``--orders``: relative error vs polynomial order for each method, on several photos.

    python benchmarks/matting_speed.py [--orders] [--sizes 256x128,512x256] [--lam 50]

Photos: scikit-image samples resized with Pillow. ``Y`` (the prox input) is stylised-like: the
content plus a smooth colour ramp plus Gaussian noise (σ = 0.05), or with ``--y photo`` another
sample photo. Timings are wall-clock medians on whatever device JAX uses (scipy: the CPU).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from timing import timed

from flexsolver.matting import (
    METHODS,
    default_order,
    laplacian_to_scipy,
    matting_laplacian,
    matting_prox,
)

PHOTOS = ("astronaut", "chelsea", "coffee")


def sample(name: str, hw: tuple[int, int]) -> np.ndarray:
    import skimage.data
    from PIL import Image

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    pil = Image.fromarray(img[..., :3]).resize((hw[1], hw[0]), Image.LANCZOS)
    return np.asarray(pil, np.float32) / 255.0


def stylised_like(content: np.ndarray, kind: str = "ramp", seed: int = 0) -> np.ndarray:
    h, w, _ = content.shape
    if kind == "photo":
        return sample("rocket", (h, w))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ramp = np.stack([0.3 * yy, -0.2 * xx, 0.25 * (xx - yy)], axis=-1)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(content.shape)
    return (content + ramp + noise).astype(np.float32)


def exact_solve(lap_scipy, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """``(I + 2λℒ)⁻¹ Y`` by SuperLU; returns the solution and the seconds it took."""
    h, w, c = y.shape
    t0 = time.perf_counter()
    a = (scipy.sparse.identity(h * w, format="csc") + 2.0 * lam * lap_scipy).tocsc()
    x = scipy.sparse.linalg.spsolve(a, y.reshape(h * w, c).astype(np.float64))
    return np.asarray(x).reshape(h, w, c), time.perf_counter() - t0


def rel_err(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


@jax.jit
def _apply(prox, y):
    return prox(y)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"512x256"`` (W×H) → ``(H, W)``."""
    out = []
    for item in text.split(","):
        w, h = item.lower().split("x")
        out.append((int(h), int(w)))
    return out


def speed_table(sizes, lam: float, order: int | None, method: str, repeats: int, y_kind: str):
    order = default_order(lam) if order is None else order
    print(f"λ = {lam}, method = {method}, order = {order}, device = {jax.devices()[0]}\n")
    print("| size (W×H) | build ℒ (s) | prox (s) | exact spsolve (s) | rel. error | speed-up |")
    print("|---|---|---|---|---|---|")
    for h, w in sizes:
        content = sample("chelsea", (h, w))
        y = stylised_like(content, y_kind)
        matting_laplacian(content)  # compiles the builder for this size
        _, t_build = timed(lambda: matting_laplacian(content).coeffs, repeats, untimed=0)
        prox = matting_prox(matting_laplacian(content), lam=lam, order=order, method=method)
        y_dev = jnp.asarray(y)
        out = _apply(prox, y_dev)  # compiles
        _, t_prox = timed(lambda: _apply(prox, y_dev), repeats, untimed=0)
        exact, t_exact = exact_solve(laplacian_to_scipy(prox.args[0]), y, lam)
        err = rel_err(out, exact)
        print(
            f"| {w}×{h} | {t_build:.3f} | {t_prox:.3f} | {t_exact:.2f} | {err:.1e} "
            f"| {t_exact / t_prox:.0f}× ({t_exact / (t_prox + t_build):.0f}× incl. build) |",
            flush=True,
        )


def order_table(sizes, lam: float, orders, methods, y_kind: str):
    print(f"relative error ‖P(Y) − x‖/‖x‖ vs order, λ = {lam}, Y = {y_kind}; "
          f"mean over {', '.join(PHOTOS)} [max]\n")
    cols = [(m, s) for s in sizes for m in methods]
    print("| order | " + " | ".join(f"{m} {w}×{h}" for m, (h, w) in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    errs = {c: {n: [] for n in orders} for c in cols}
    for h, w in sizes:
        for name in PHOTOS:
            content = sample(name, (h, w))
            y = stylised_like(content, y_kind)
            lap = matting_laplacian(content)
            exact, _ = exact_solve(laplacian_to_scipy(lap), y, lam)
            for m in methods:
                for n in orders:
                    out = _apply(matting_prox(lap, lam=lam, order=n, method=m), jnp.asarray(y))
                    errs[(m, (h, w))][n].append(rel_err(out, exact))
    for n in orders:
        cells = [f"{np.mean(errs[c][n]):.1e} [{np.max(errs[c][n]):.1e}]" for c in cols]
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", action="store_true", help="error vs order instead of speed")
    ap.add_argument("--sizes", default=None, help="W×H list, e.g. 256x128,512x256")
    ap.add_argument("--lam", type=float, default=50.0)
    ap.add_argument("--order", type=int, default=None, help="speed mode: polynomial order")
    ap.add_argument("--order-list", default="10,20,30,40,50,60,80,100,120")
    ap.add_argument("--method", default="anchored", choices=METHODS)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--y", dest="y_kind", default="ramp", choices=("ramp", "photo"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.orders:
        sizes = parse_sizes(args.sizes or "256x256,512x256")
        orders = [int(n) for n in args.order_list.split(",")]
        order_table(sizes, args.lam, orders, args.methods.split(","), args.y_kind)
    else:
        sizes = parse_sizes(args.sizes or "256x128,512x256,1024x512")
        speed_table(sizes, args.lam, args.order, args.method, args.repeats, args.y_kind)


if __name__ == "__main__":
    main()
