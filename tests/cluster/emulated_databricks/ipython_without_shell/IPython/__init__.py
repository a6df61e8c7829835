"""A stand-in for IPython as a Python script task sees it: installed, but no shell
runs, so `get_ipython()` is None (as in the real IPython outside a shell)."""


def get_ipython() -> None:
    return None
