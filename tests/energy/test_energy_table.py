import pytest

from neurojoule.energy import DEFAULT_TABLE, ENERGY_TABLES, EnergyTable, get_energy_table


def test_default_is_horowitz_45nm_float32():
    table = get_energy_table()
    assert DEFAULT_TABLE == "45nm"
    assert table is ENERGY_TABLES["45nm"]
    assert (table.mac_pj, table.ac_pj) == (4.6, 0.9)
    assert table.mac_j == pytest.approx(4.6e-12)
    assert table.ac_j == pytest.approx(0.9e-12)


def test_custom_spec_is_parsed_in_any_order_with_spaces():
    assert get_energy_table("mac=4.6,ac=0.9") == EnergyTable("mac=4.6,ac=0.9", 4.6, 0.9)
    table = get_energy_table(" ac = 0.03 , MAC=0.2 ")
    assert (table.mac_pj, table.ac_pj) == (0.2, 0.03)


def test_a_table_passes_through():
    table = EnergyTable("mine", 1.0, 0.5)
    assert get_energy_table(table) is table


@pytest.mark.parametrize(
    "spec",
    [
        "7nm",
        "",
        "mac=4.6",
        "mac=4.6,ac=",
        "mac=4.6,ac=x",
        "mac=4.6,ac=-1",
        "mac=1,ac=2,mac=3",
        "mac=1,ad=2",
        "mac=inf,ac=1",
        4.6,
        None,
    ],
)
def test_bad_specs_name_the_expected_form(spec):
    with pytest.raises(ValueError, match=r"mac=<pJ>,ac=<pJ>"):
        get_energy_table(spec)


def test_negative_energy_is_refused():
    with pytest.raises(ValueError, match="ac_pj must be a finite number >= 0, got -0.1"):
        EnergyTable("bad", 1.0, -0.1)
