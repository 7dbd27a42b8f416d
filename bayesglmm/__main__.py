"""``python -m bayesglmm``: the same as the ``bayesglmm`` command (see :mod:`bayesglmm.cli`)."""

from bayesglmm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
