"""``python -m relay`` is the same program as the ``clever-relay`` console script."""

from relay.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
