"""Energy per operation: a multiply-accumulate (MAC) and an accumulate (AC), in picojoules."""

from __future__ import annotations

import math
from dataclasses import dataclass

CUSTOM_FORM = "mac=<pJ>,ac=<pJ>"


@dataclass(frozen=True)
class EnergyTable:
    """Energy of one MAC (real-valued input) and one AC (binary spike input), in pJ."""

    name: str
    mac_pj: float
    ac_pj: float

    def __post_init__(self):
        for field, value in (("mac_pj", self.mac_pj), ("ac_pj", self.ac_pj)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"energy table {field} must be a finite number >= 0, got {value!r}"
                )

    @property
    def mac_j(self) -> float:
        return self.mac_pj * 1e-12

    @property
    def ac_j(self) -> float:
        return self.ac_pj * 1e-12


# Horowitz, ISSCC 2014, 45 nm CMOS, 32-bit float: mult 3.7 pJ + add 0.9 pJ = MAC 4.6 pJ.
ENERGY_TABLES: dict[str, EnergyTable] = {
    "45nm": EnergyTable("45nm", mac_pj=4.6, ac_pj=0.9),
}
DEFAULT_TABLE = "45nm"


def get_energy_table(spec: str | EnergyTable = DEFAULT_TABLE) -> EnergyTable:
    """A table by name (see ENERGY_TABLES) or from a spec "mac=4.6,ac=0.9" (pJ each)."""
    if isinstance(spec, EnergyTable):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"energy table must be a name or {CUSTOM_FORM!r}, got {spec!r}")
    if spec.strip() in ENERGY_TABLES:
        return ENERGY_TABLES[spec.strip()]
    values = _parse_custom(spec)
    if values is None:
        raise ValueError(
            f"energy table must be one of {sorted(ENERGY_TABLES)} or of the form "
            f"{CUSTOM_FORM!r} (e.g. 'mac=4.6,ac=0.9'), got {spec!r}"
        )
    mac, ac = values["mac"], values["ac"]
    return EnergyTable(f"mac={mac:g},ac={ac:g}", mac_pj=mac, ac_pj=ac)


def _parse_custom(spec: str) -> dict[str, float] | None:
    """{"mac": .., "ac": ..} from "mac=4.6,ac=0.9", or None when spec is not of that form."""
    values: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, text = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("mac", "ac") or key in values:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        if not math.isfinite(value) or value < 0:
            return None
        values[key] = value
    return values if len(values) == 2 else None
