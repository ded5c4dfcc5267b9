"""The public API is what __all__ says, and each name resolves."""

import sensreport


def test_all_names_resolve():
    for name in sensreport.__all__:
        assert getattr(sensreport, name) is not None, name
