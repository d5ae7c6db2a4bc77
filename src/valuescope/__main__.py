"""`python -m valuescope`: the same command line as `valuescope`."""

from valuescope.cli import main

if __name__ == "__main__":
    main()
