"""The in-process result memo shared by the analyses (per file version, filter, arguments)."""

from __future__ import annotations

import copy
import functools
import threading
from collections import OrderedDict

MEMO_SIZE = 256  # results kept per function; small frames, a few MB at most
_ALL: list = []  # every memoised function, for clear_all()


def freeze(v):
    """A hashable copy of nested lists/dicts (memo and call keys)."""
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    return v


def memoize(fn):
    """Remember results per (database file version, filter, arguments); hand out copies.

    A page computes Figure 1 and Table 2 from the same summary and tests, and
    `report` builds several sections from them: each is computed once. The key
    holds the file's path, mtime and size, so a rewritten database is never
    served stale results. Thread-safe; callers get copies they may modify.
    """
    cache: OrderedDict = OrderedDict()
    lock = threading.Lock()
    running: dict = {}  # key → Event of a computation in progress

    @functools.wraps(fn)
    def wrapper(db, *args, **kwargs):
        key = (db.version, freeze(args), freeze(kwargs))
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return copy.deepcopy(cache[key])
            done = running.get(key)
            owner = done is None
            if owner:
                done = running[key] = threading.Event()
        if not owner:
            # Another session is computing the same thing (several users on one filter):
            # wait for its result instead of computing it again alongside.
            done.wait(timeout=300)
            with lock:
                if key in cache:
                    return copy.deepcopy(cache[key])
            return fn(db, *args, **kwargs)  # it failed: compute here (and raise here)
        try:
            result = fn(db, *args, **kwargs)
            with lock:
                cache[key] = result
                while len(cache) > MEMO_SIZE:
                    cache.popitem(last=False)
        finally:
            with lock:
                running.pop(key, None)
            done.set()
        return copy.deepcopy(result)

    wrapper.cache_clear = cache.clear
    _ALL.append(wrapper)
    return wrapper


def clear_all() -> None:
    """Empty every memo (the benchmark times cold computations)."""
    for fn in _ALL:
        fn.cache_clear()

