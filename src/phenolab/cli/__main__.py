"""``python -m phenolab.cli``."""

from phenolab.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
