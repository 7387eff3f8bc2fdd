"""A module imported on first use.

SciPy's stats module takes about 0.65 s to import here, a third of the
dashboard's first-run import time, and the default page (Overview) never needs
it. Modules that use SciPy hold a `LazyModule` and import it when a test or
a t quantile is first asked for.
"""

from __future__ import annotations

import importlib
import threading


class LazyModule:
    """Stands for the module `name`; the first attribute access imports it."""

    def __init__(self, name: str):
        self._name = name
        self._module = None
        self._lock = threading.Lock()

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            with self._lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
                module = self._module
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<LazyModule {self._name!r} ({state})>"
