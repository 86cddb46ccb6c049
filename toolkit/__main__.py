"""`python -m toolkit` runs the migkit command line."""

from toolkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
