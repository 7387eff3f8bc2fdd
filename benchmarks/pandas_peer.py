"""The pandas peer: the Biomarkers and Remission computations written the common way.

Whole tables in pandas, filtered and grouped in pandas. Statistical tests call the
same `stats` functions, so the comparison is of data access and aggregation only;
tests/test_bench.py checks that the outputs equal the seam's.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from lupus_dash import schema, stats
from lupus_dash.analyses import biomarkers, common, remission
from lupus_dash.db import Database
from lupus_dash.filters import Filter

DEFAULT_ENDPOINT = "c3_g_l"
PRESET = "standard"


class PandasPeer:
    """The same computations written the common way: whole tables in pandas, filter, group.

    Statistical tests call the same `stats` functions, so the comparison is of
    data access and aggregation only; `tests/test_bench.py` checks that the
    outputs equal `analysis`'s.
    """

    def __init__(self, db: Database, cohort: str):
        t0 = time.perf_counter()
        self.cohort = cohort
        self.patients = db.query("SELECT * FROM patient_facts WHERE cohort = ?", [cohort])
        self.visits = db.query("SELECT * FROM visit_facts WHERE cohort = ?", [cohort])
        self.weeks = common.cohort_info(db, cohort)["scheduled_weeks"]
        self.load_s = time.perf_counter() - t0

    # filtering, as one would write it in pandas
    def _patients(self, flt: Filter) -> pd.DataFrame:
        p = self.patients
        mask = pd.Series(True, index=p.index)
        for col, vals in flt.values:
            s = p[col]
            real = [v for v in vals if v != "(missing)"]
            m = s.isin(real).fillna(False).astype(bool)
            if len(real) != len(vals):
                m |= s.isna()
            mask &= m
        age = p["age_at_baseline_years"]
        if flt.age_min is not None:
            mask &= (age >= flt.age_min).fillna(False).astype(bool)
        if flt.age_max is not None:
            mask &= (age <= flt.age_max).fillna(False).astype(bool)
        return p[mask]

    def _visits(self, flt: Filter) -> tuple[pd.DataFrame, pd.DataFrame]:
        pts = self._patients(flt)
        return pts, self.visits[self.visits["patient_id"].isin(pts["patient_id"])]

    # Biomarkers
    def summary(self, flt: Filter) -> pd.DataFrame:
        _, v = self._visits(flt)
        eps = [e for e in schema.ENDPOINTS if self.visits[e.column].notna().any()]
        v = v[v["visit_week"].isin(self.weeks)]
        long = v.melt(id_vars=["visit_week"], value_vars=[e.column for e in eps],
                      var_name="endpoint", value_name="value").dropna(subset=["value"])
        long["value"] = long["value"].astype(float)
        g = long.groupby(["endpoint", "visit_week"])["value"]
        agg = g.agg(n="count", mean="mean", sd="std", total="sum")
        # SPSS type-6 quartiles, as biomarkers.summary (pandas' quantile is type 7).
        q = g.apply(lambda s: pd.Series(np.quantile(s.to_numpy(), [0.5, 0.25, 0.75],
                                                    method="weibull"),
                                        index=["median", "p25", "p75"])).unstack()
        # (an empty filter gives no quartile columns at all)
        agg = agg.join(q.reindex(columns=["median", "p25", "p75"])).reset_index()
        grid = pd.MultiIndex.from_product([[e.column for e in eps], self.weeks],
                                          names=["endpoint", "visit_week"]).to_frame(index=False)
        df = grid.merge(agg, on=["endpoint", "visit_week"], how="left")
        # The same finishing step (SE, CIs, binary rates) as biomarkers.summary.
        return biomarkers.finish_summary(df, eps)

    def _wide(self, flt: Filter, endpoint: str) -> np.ndarray:
        _, v = self._visits(flt)
        v = v[v["visit_week"].isin(self.weeks)]
        wide = v.pivot(index="patient_id", columns="visit_week", values=endpoint)
        return wide.reindex(columns=self.weeks).to_numpy(dtype=float, na_value=np.nan)

    def longitudinal(self, flt: Filter, endpoint: str = DEFAULT_ENDPOINT) -> pd.DataFrame:
        ep = schema.ENDPOINTS_BY_COLUMN[endpoint]
        arr = self._wide(flt, endpoint)
        methods = biomarkers.BINARY_METHODS if ep.kind == "binary" else biomarkers.CONTINUOUS_METHODS
        rows = biomarkers._paired_rows(endpoint, arr, list(self.weeks), biomarkers.COMPARATORS,
                                     list(methods))
        return biomarkers.adjust_longitudinal(
            pd.DataFrame(rows, columns=biomarkers.LONGITUDINAL_COLUMNS), "none")

    def biomarkers(self, flt: Filter) -> dict:
        return {"summary": self.summary(flt), "longitudinal": self.longitudinal(flt)}

    # Remission
    def _outcomes(self, v: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"patient_id": v["patient_id"], "visit_week": v["visit_week"],
                            "is_last": v["is_last"]})
        for d in schema.REMISSION_DEFINITIONS:
            col = f"{d}_{PRESET}" if d in schema.PRESET_DEFINITIONS else d
            out[d] = v[col].astype("boolean")
        pred = v["prednisone_mg_day"]
        out["glucocorticoid_off"] = (pred == 0).astype("boolean")
        out["glucocorticoid_le_5"] = (pred <= 5).astype("boolean")
        return out

    def remission(self, flt: Filter) -> pd.DataFrame:
        """Rates with non-responder imputation, not-evaluable visits left out (the default)."""
        pts, v = self._visits(flt)
        o = self._outcomes(v)
        defs = [*schema.REMISSION_DEFINITIONS, *remission.EXTRA_OUTCOMES]
        rows = []
        for wk in [*self.weeks, "last"]:
            sub = o[o["is_last"].fillna(False).astype(bool)] if wk == "last" \
                else o[o["visit_week"] == wk]
            for d in defs:
                if d in schema.RENAL_DEFINITIONS:
                    flag = pts[schema.RENAL_ELIGIBLE_COLUMN[d]]
                    elig = set(pts.loc[flag.fillna(False).astype(bool), "patient_id"])
                else:
                    elig = set(pts["patient_id"])
                s = sub.loc[sub["patient_id"].isin(elig), d]
                att, obs = len(s), int(s.notna().sum())
                yes = int(s.fillna(False).astype(bool).sum())
                no_assess = len(elig) - att
                denom = obs + no_assess
                rate, lo, hi = stats.proportion_ci(yes, denom, method="wilson")
                rows.append({"visit_week": wk, "definition": d, "n_achieved": yes,
                             "n_not_achieved": obs - yes, "n_not_evaluable": att - obs,
                             "n_no_assessment": no_assess, "n_eligible": len(elig),
                             "n_denominator": denom, "rate": rate, "ci_low": lo,
                             "ci_high": hi})
        return pd.DataFrame(rows)

    def states(self, flt: Filter) -> pd.DataFrame:
        pts, v = self._visits(flt)
        grid = pd.MultiIndex.from_product([pts["patient_id"], self.weeks],
                                          names=["patient_id", "visit_week"]).to_frame(index=False)
        g = grid.merge(v[["patient_id", "visit_week", f"lldas_{PRESET}", f"remission_{PRESET}"]],
                       on=["patient_id", "visit_week"], how="left", indicator=True)
        lld = g[f"lldas_{PRESET}"].astype("boolean")
        rem = g[f"remission_{PRESET}"].astype("boolean")
        state = np.select(
            [(g["_merge"] == "left_only").to_numpy(), rem.fillna(False).to_numpy(bool),
             lld.fillna(False).to_numpy(bool), (~lld).fillna(False).to_numpy(bool)],
            ["no visit", "remission", "LLDAS", "active"], default="not evaluable")
        df = pd.DataFrame({"visit_week": g["visit_week"], "state": state})
        df = df.groupby(["visit_week", "state"]).size().reset_index(name="n")
        df["pct"] = df["n"] / df.groupby("visit_week")["n"].transform("sum") * 100
        order = {s: i for i, s in enumerate(["remission", "LLDAS", "active", "not evaluable",
                                             "no visit"])}
        return df.sort_values(["visit_week", "state"], key=lambda s: s.map(order)
                              if s.name == "state" else s).reset_index(drop=True)

    def km(self, flt: Filter) -> pd.DataFrame:
        _, v = self._visits(flt)
        v = v[v["visit_week"] > 0]
        ev = v[v[f"lldas_{PRESET}"].fillna(False).astype(bool)]
        first = ev.groupby("patient_id")["visit_week"].min()
        last = v.groupby("patient_id")["visit_week"].max()
        time_ = first.reindex(last.index).fillna(last).to_numpy(float)
        event = last.index.isin(first.index).astype(int)
        km = stats.kaplan_meier(time_, event)
        km.insert(0, "group", "All")
        return km

    def remission_page(self, flt: Filter) -> dict:
        return {"remission": self.remission(flt), "states": self.states(flt), "km": self.km(flt)}


