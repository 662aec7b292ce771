"""``python -m flexsolver`` is the ``flexsolver`` command (see :mod:`flexsolver.cli`)."""

from flexsolver.cli import main

main()
