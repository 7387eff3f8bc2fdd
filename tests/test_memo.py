"""cache.memoize: per file version and arguments, copies out, one computation per key."""

import threading
import time

import pandas as pd

from lupus_dash import cache


class FakeDb:
    def __init__(self, version):
        self.version = version


def test_concurrent_callers_share_one_computation_and_get_copies():
    calls = []

    @cache.memoize
    def slow(db, x):
        calls.append(x)
        time.sleep(0.3)
        return pd.DataFrame({"x": [x]})

    db = FakeDb(("f", 1, 1))
    out = []
    threads = [threading.Thread(target=lambda: out.append(slow(db, 7))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert calls == [7]  # five sessions, one computation
    assert [int(df["x"].iloc[0]) for df in out] == [7] * 5
    out[0].loc[0, "x"] = 99  # a caller's copy is its own
    assert int(slow(db, 7)["x"].iloc[0]) == 7
    slow(FakeDb(("f", 2, 1)), 7)  # a rewritten file is a new key
    assert calls == [7, 7]


def test_a_failed_computation_is_not_cached_and_waiters_raise_too():
    calls = []

    @cache.memoize
    def boom(db):
        calls.append(1)
        time.sleep(0.2)
        raise ValueError("bad")

    db = FakeDb(("g", 1, 1))
    errors = []

    def call():
        try:
            boom(db)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == ["bad"] * 3
    assert 1 <= len(calls) <= 3


def test_lru_keeps_the_recently_used_and_clear_all_empties_it():
    lru = cache.LRU(size=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert lru.get("b", "miss") == "miss"
    cache.clear_all()
    assert lru.get("a") is None and lru.get("c") is None


def test_one_call_spelt_two_ways_is_computed_once():
    calls = []

    @cache.memoize
    def frames(db, flt, preset="standard", group_by=None, *, weeks=()):
        calls.append((flt, preset, group_by, weeks))
        return pd.DataFrame({"x": [1]})

    db = FakeDb(("h", 1, 1))
    frames(db, "f")
    frames(db, "f", "standard")  # a default spelt out
    frames(db, "f", "standard", None)
    frames(db, flt="f", group_by=None)  # by keyword
    frames(db, "f", preset="standard", weeks=())
    assert len(calls) == 1
    frames(db, "f", group_by="sex")  # a different call is still its own entry
    frames(db, "f", weeks=[4, 8])
    frames(db, "f", weeks=(4, 8))  # a list and a tuple of the same weeks: one entry
    assert len(calls) == 3
    try:
        frames(db, "f", colour="red")
    except TypeError:
        pass
    else:
        raise AssertionError("an unknown argument must still raise")
