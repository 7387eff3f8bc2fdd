"""Filter value: SQL and parameters, sentence, URL and JSON round trips, CLI parsing."""

import pytest

from lupus_dash.filters import MISSING, Filter, FilterError


@pytest.mark.parametrize(
    "kwargs, sql, params",
    [
        ({}, "p.cohort = ?", ["c"]),
        ({"sex": ["F"]}, 'p.cohort = ? AND (p."sex" IN (SELECT unnest(?)))', ["c", ["F"]]),
        (
            {"biopsy_class": ["IV", "IV+V"], "completer": ["true"]},
            ('p.cohort = ? AND (p."biopsy_class" IN (SELECT unnest(?))) '
             'AND (p."completer" IN (SELECT unnest(?)))'),
            ["c", ["IV", "IV+V"], [True]],
        ),
        (
            {"biopsy_class": ["V", MISSING]},
            'p.cohort = ? AND (p."biopsy_class" IN (SELECT unnest(?)) OR p."biopsy_class" IS NULL)',
            ["c", ["V"]],
        ),
        (
            {"age_min": 10, "age_max": 15},
            "p.cohort = ? AND p.age_at_baseline_years >= ? AND p.age_at_baseline_years <= ?",
            ["c", 10.0, 15.0],
        ),
    ],
)
def test_where_sql_and_params(kwargs, sql, params):
    got_sql, got_params = Filter.build("c", **kwargs).where("p")
    assert got_sql == sql
    assert got_params == params


def test_values_never_reach_sql_text():
    nasty = "x'); DROP TABLE patients; --"
    sql, params = Filter.build("c", immunosuppressant=[nasty]).where()
    assert nasty not in sql and params[1] == [nasty]


def test_sentence_reads_like_the_sql():
    f = Filter.build("csle", biopsy_class=["IV", "IV+V"], sex=["F"], completer=[True])
    assert f.sentence(20, 26) == (
        "csle: renal biopsy class IV or IV+V, female, completers — 20 of 26 patients"
    )
    assert Filter.build("csle").sentence(26, 26) == "csle: all patients — 26 of 26 patients"
    assert Filter.build("c", organ_kidney=[True], age_min=12).describe() == (
        "kidney involvement, aged ≥ 12 at baseline"
    )


def test_query_params_round_trip():
    f = Filter.build("csle", biopsy_class=["IV", "IV+V"], organ_kidney=["yes"],
                     baseline_anti_dsdna=["positive"], age_min=10, age_max=15.5)
    q = f.to_query_params()
    assert q["biopsy_class"] == ["IV", "IV+V"] and q["age"] == ["10-15.5"]
    assert q["organ_kidney"] == ["true"]
    assert Filter.from_query_params(q, "other") == f
    assert Filter.from_json(f.to_json()) == f


def test_cli_parsing_matches_build():
    f = Filter.from_cli("c", ["completer=true", "biopsy_class=IV,IV+V", "age=10-"])
    assert f == Filter.build("c", completer=[True], biopsy_class=["IV", "IV+V"], age_min=10)
    assert f.cli_args() == ["biopsy_class=IV,IV+V", "completer=true", "age=10-"]
    assert Filter.from_cli("c", f.cli_args()) == f


@pytest.mark.parametrize(
    "specs, message",
    [
        (["colour=red"], "unknown filter column 'colour'"),
        (["sex"], "expected COL=VALUE"),
        (["completer=maybe"], "expected true or false"),
        (["age=abc"], "expected MIN-MAX"),
        (["age=20-10"], "is empty"),
    ],
)
def test_cli_errors_are_clear(specs, message):
    with pytest.raises(FilterError, match=message):
        Filter.from_cli("c", specs)
