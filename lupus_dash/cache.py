"""The in-process result memo shared by the analyses (per file version, filter, arguments)."""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections import OrderedDict

MEMO_SIZE = 256  # results kept per function; small frames, a few MB at most
_ALL: list = []  # every memoised function (and registered LRU), for clear_all()
_MISS = object()


def freeze(v):
    """A hashable copy of nested lists/dicts (memo and call keys)."""
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    return v


class LRU:
    """A small thread-safe least-recently-used map, emptied by clear_all() when registered."""

    def __init__(self, size: int = MEMO_SIZE, *, register: bool = True):
        self.size = size
        self.lock = threading.RLock()
        self._items: OrderedDict = OrderedDict()
        if register:
            _ALL.append(self)

    def get(self, key, default=None):
        with self.lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def cache_clear(self) -> None:
        with self.lock:
            self._items.clear()


def memoize(fn):
    """Remember results per (database file version, filter, arguments); hand out copies.

    A page computes Figure 1 and Table 2 from the same summary and tests, and
    `report` builds several sections from them: each is computed once. The key
    holds the file's path, mtime and size, so a rewritten database is never
    served stale results. The arguments are bound to `fn`'s signature with its
    defaults filled in, so one call written positionally, by keyword or with a
    default spelt out is one entry. Thread-safe; callers get copies they may modify.
    """
    sig = inspect.signature(fn)
    # The wrapper is what clear_all() and the benchmarks see, not its LRU.
    store = LRU(register=False)
    lock = store.lock
    running: dict = {}  # key → Event of a computation in progress

    def key_of(db, args, kwargs):
        bound = sig.bind(db, *args, **kwargs)
        bound.apply_defaults()
        return (db.version, freeze(tuple(bound.arguments.values())[1:]))

    @functools.wraps(fn)
    def wrapper(db, *args, **kwargs):
        key = key_of(db, args, kwargs)
        with lock:
            hit = store.get(key, _MISS)
            if hit is not _MISS:
                return copy.deepcopy(hit)
            done = running.get(key)
            owner = done is None
            if owner:
                done = running[key] = threading.Event()
        if not owner:
            # Another session is computing the same thing (several users on one filter):
            # wait for its result instead of computing it again alongside.
            done.wait(timeout=300)
            hit = store.get(key, _MISS)
            if hit is not _MISS:
                return copy.deepcopy(hit)
            return fn(db, *args, **kwargs)  # it failed: compute here (and raise here)
        try:
            result = fn(db, *args, **kwargs)
            store.put(key, result)
        finally:
            with lock:
                running.pop(key, None)
            done.set()
        return copy.deepcopy(result)

    wrapper.cache_clear = store.cache_clear
    _ALL.append(wrapper)
    return wrapper


def clear_all() -> None:
    """Empty every memo (the benchmark times cold computations)."""
    for fn in _ALL:
        fn.cache_clear()
