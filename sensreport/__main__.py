"""``python -m sensreport``: the same command line as ``sensreport``."""

from .cli import entry

if __name__ == "__main__":  # pragma: no cover - run as a module
    entry()
