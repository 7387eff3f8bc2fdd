"""The endpoint definition presets: the one registry of LLDAS / remission thresholds.

`schema` takes the preset names from here (one `lldas_<preset>` and
`remission_<preset>` column each); `endpoints` evaluates them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _num(x: float) -> str:
    """Display a number without trailing zeros (display only, never used in computation)."""
    x = float(x)
    if math.isnan(x):
        return "?"
    return str(int(x)) if x.is_integer() else f"{x:g}"


_OPS = {"le": "≤", "lt": "<"}
_FAIL_OPS = {"le": ">", "lt": "≥"}


@dataclass(frozen=True)
class Preset:
    """A named set of LLDAS and remission thresholds with their operators."""

    name: str
    label: str
    # LLDAS (Franklyn et al. 2016, Ann Rheum Dis, Table 1)
    lldas_sledai_max: int = 4
    lldas_sledai_op: str = "le"
    lldas_pga_max: float = 1.0
    lldas_pga_op: str = "le"
    lldas_pred_max_mg: float = 7.5
    lldas_pred_op: str = "le"
    lldas_pred_mg_kg: float | None = None  # paediatric: limit = min(k × weight, max)
    lldas_source: str = "Franklyn et al. 2016, Ann Rheum Dis (LLDAS)"
    # Remission (DORIS 2021, van Vollenhoven et al., Lupus Sci Med)
    remission_sledai_basis: str = "clinical"  # "clinical" = cSLEDAI, "total" = SLEDAI-2K
    remission_pga_max: float = 0.5
    remission_pga_op: str = "lt"
    remission_pred_max_mg: float = 5.0
    remission_pred_op: str = "le"
    remission_pred_mg_kg: float | None = None
    remission_source: str = "van Vollenhoven et al. 2021, Lupus Sci Med (DORIS remission)"

    def describe(self) -> list[str]:
        """Human-readable criteria with their sources, for the Methods page and the report."""
        lo, ro = _OPS[self.lldas_sledai_op], _OPS[self.lldas_pga_op]
        out = [
            f"LLDAS [{self.lldas_source}], all of:",
            (
                f"  1. SLEDAI-2K {lo} {self.lldas_sledai_max} with no major organ activity "
                "(renal, CNS, serosal/cardiopulmonary, vasculitis, fever; from the "
                "major_organ_activity column or the SLEDAI-2K descriptors) and no haemolytic "
                "anaemia or GI activity (counted when recorded as present)"
            ),
            (
                "  2. no new lupus activity since the previous assessment (new_activity column, "
                "or a SLEDAI-2K descriptor present that was absent at the previous assessment; "
                "not evaluable at a patient's first assessment unless no descriptor is active)"
            ),
            f"  3. PGA (0–3) {ro} {_num(self.lldas_pga_max)}",
            "  4. " + _pred_text(self.lldas_pred_op, self.lldas_pred_max_mg, self.lldas_pred_mg_kg),
            (
                "  5. standard maintenance immunosuppressants/biologics: not recorded in the "
                "data contract, assumed met"
            ),
        ]
        if self.remission_sledai_basis == "clinical":
            s = "clinical SLEDAI (SLEDAI-2K without low complement and increased DNA binding) = 0"
        else:
            s = "total SLEDAI-2K = 0 (serological activity also excluded)"
        out += [
            f"Remission [{self.remission_source}], all of:",
            f"  1. {s}",
            f"  2. PGA (0–3) {_OPS[self.remission_pga_op]} {_num(self.remission_pga_max)}",
            "  3. "
            + _pred_text(
                self.remission_pred_op, self.remission_pred_max_mg, self.remission_pred_mg_kg
            ),
            (
                "  4. stable antimalarials, immunosuppressants and biologics allowed "
                "(not recorded, assumed met)"
            ),
        ]
        return out

    def to_dict(self) -> dict:
        """Thresholds, operators and the criteria text, JSON-serialisable."""
        d = asdict(self)
        d["criteria"] = self.describe()
        return d


def _pred_text(op: str, max_mg: float, mg_kg: float | None) -> str:
    if mg_kg is None:
        return f"prednisone-equivalent {_OPS[op]} {_num(max_mg)} mg/day"
    return (
        f"prednisone-equivalent {_OPS[op]} min({_num(mg_kg)} mg/kg, {_num(max_mg)} mg)/day "
        "(weight of the visit, else the patient's baseline weight; no weight → not evaluable "
        f"unless the dose is 0 or above {_num(max_mg)} mg)"
    )


PRESETS: dict[str, Preset] = {
    # Published definitions (CLINICAL_DEFINITIONS.md §3, §4).
    "standard": Preset("standard", "Published definitions (LLDAS 2016, DORIS 2021)"),
    # As written in the paediatric seed paper: strict operators, total SLEDAI-2K.
    "seed_paper": Preset(
        "seed_paper",
        "Seed paper (strict: SLEDAI-2K < 4, PGA < 1, prednisone < 7.5; remission on total "
        "SLEDAI-2K, prednisone < 5)",
        lldas_sledai_op="lt",
        lldas_pga_op="lt",
        lldas_pred_op="lt",
        lldas_source="seed paper's wording of Franklyn et al. 2016 (LLDAS)",
        remission_sledai_basis="total",
        remission_pred_op="lt",
        remission_source="seed paper's wording of DORIS remission",
    ),
    # Paediatric weight-based variants (Smith et al. 2023 cLLDAS; Smith et al. 2024 cCR).
    "paediatric": Preset(
        "paediatric",
        "Paediatric (cLLDAS 2023, cCR 2024; weight-based prednisone limits)",
        lldas_pred_mg_kg=0.15,
        lldas_source="Smith et al. 2023, Clin Immunol (childhood LLDAS, cLLDAS)",
        remission_pred_mg_kg=0.1,
        remission_source="Smith et al. 2024, Clin Immunol (childhood clinical remission, cCR)",
    ),
}
