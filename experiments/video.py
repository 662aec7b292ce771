"""Online video style transfer with short-term temporal consistency (SPEC §4.2).

    python -m experiments.video IN STYLE -o OUT.mp4 [--max-side 640] [--frames N] [--photo]
        [--no-temporal] [--lam 0.37] [--checkpoint DIR] [--random]

The same as ``flexsolver video`` (this module forwards to :mod:`flexsolver.cli`). Frame ``i+1``
is stylised with the prox ``P = temporal_prox(warp(X(i), w_bw), M)`` (after the photorealism prox
of the frame with ``--photo``, then clipping to [0,1]), where ``X(i)`` is the stylised frame
``i``, ``w_bw`` the DIS flow of the *input* frames ``i+1 → i`` and ``M`` the consistency mask.
The style Grams are computed once; the solver is compiled once for the clip: every frame gets a
prox of the same pytree structure (frame 0, and all frames with ``--no-temporal``, get a temporal
prox with ``M = 0``, which is the identity). See :func:`flexsolver.video.stylise_clip`.
"""

from __future__ import annotations

import sys

from flexsolver.cli import main as cli_main
from flexsolver.video import frame_prox, stylise_clip

__all__ = ["frame_prox", "main", "stylise_clip"]


def main(argv=None) -> None:
    cli_main(["video", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
