"""`migkit weights DATA --design design.toml` on a DATA folder built here with the ingest conventions
(docs/tables.md), and `migkit weights rake TABLE`."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import REPO
from toolkit.cli import app
from toolkit.config import check_config, line_numbers, schema_paths
from toolkit.errors import ToolkitError
from toolkit.estimate import estimate
from toolkit.weights import WeightDesign, WeightingError, compute_weights
from toolkit.weights.config import DESIGN_SCHEMA

runner = CliRunner()


def _build_example(folder: Path) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location(
        "make_example", REPO / "examples" / "weights" / "make_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_example(folder)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _build_example(tmp_path_factory.mktemp("wex"))


@pytest.fixture(scope="module")
def weighted(example: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("wout")
    result = runner.invoke(
        app,
        [
            "weights",
            str(example["DATA"]),
            "--design",
            str(example["design.toml"]),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_data_folder_follows_ingest_conventions(example: dict[str, Path]) -> None:
    hh = pd.read_parquet(example["DATA"] / "household.parquet")
    hl = pd.read_parquet(example["DATA"] / "household-hl.parquet")
    assert {"KEY", "hh_id", "id_stratum", "id_psu", "id_hh_no", "hh_result"} <= set(hh.columns)
    assert {"PARENT_KEY", "hh_id", "hl_no", "hl_sex", "hl_age"} <= set(hl.columns)
    assert str(hh["hh_id"].dtype) == "Int64"
    assert set(hl["PARENT_KEY"]) <= set(hh["KEY"])


def test_weights_command_writes_tables_report_and_histogram(
    weighted: tuple[Path, dict], example: dict[str, Path]
) -> None:
    out, payload = weighted
    hh = pd.read_parquet(out / "household.parquet")
    hl = pd.read_parquet(out / "household-hl.parquet")
    controls_hh = pd.read_csv(example["controls_households.csv"])
    controls_p = pd.read_csv(example["controls_persons.csv"])
    # Household weights: only completed interviews carry weight, and they meet the household controls.
    assert (hh.loc[hh["hh_result"] != "1", "weight_hh"] == 0).all()
    assert (hh.loc[hh["hh_result"] == "1", "weight_hh"] > 0).all()
    psu = pd.read_csv(example["psu_sample.csv"])
    region = hh["id_psu"].map(psu.set_index("ea")["region"])
    totals = hh["weight_hh"].groupby(region).sum()
    for row in controls_hh.itertuples():
        assert totals[row.level] == pytest.approx(row.target, rel=1e-8)
    # Person weights meet every person margin.
    assert hl["weight_person"].sum() == pytest.approx(
        controls_p.loc[controls_p.variable == "sex", "target"].sum(), rel=1e-8
    )
    by_sex = hl["weight_person"].groupby(hl["hl_sex"]).sum()
    for row in controls_p[controls_p.variable == "sex"].itertuples():
        assert by_sex[str(row.level)] == pytest.approx(row.target, rel=1e-7)
    # Replicates (JKn) on both tables; the report and the PNG histogram exist.
    reps = [c for c in hh.columns if re.fullmatch(r"repw_\d+", c)]
    assert len(reps) == payload["replicates"]["n"] > 20
    assert [c for c in hl.columns if c.startswith("repw_")] == reps
    report = json.loads((out / "weights-report.json").read_text(encoding="utf-8"))
    names = [s["step"] for s in report["steps"]]
    assert names[:2] == ["base", "nonresponse"] and "calibrate_persons" in names
    assert all({"n", "sum", "cv", "deff_kish", "n_eff"} <= set(s["summary"]) for s in report["steps"])
    assert (out / "weights-histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "tables.json").is_file()  # copied along with the tables


def test_base_weights_follow_the_design(weighted: tuple[Path, dict], example: dict[str, Path]) -> None:
    out, _ = weighted
    hh = pd.read_parquet(out / "household.parquet")
    psu = pd.read_csv(example["psu_sample.csv"]).set_index("ea")
    listing = pd.read_csv(example["listing.csv"]).set_index(["ea", "group"])
    n_h = psu.groupby("stratum").size()
    certain = psu["mos"] * psu["stratum"].map(n_h) >= psu["stratum_mos"]
    assert certain.sum() == 1
    # p1 = n_h·M_hi/M_h, with the certainty EA taken out of n_h and M_h of its stratum
    n_left = psu["stratum"].map(n_h - certain.groupby(psu["stratum"]).sum())
    m_left = psu["stratum_mos"] - psu["stratum"].map(
        psu["mos"].where(certain, 0).groupby(psu["stratum"]).sum()
    )
    p1_of = (n_left * psu["mos"] / m_left / psu["segments"]).where(~certain, 1.0)
    for row in hh.sample(60, random_state=1).itertuples():
        p1 = p1_of[row.id_psu]
        lst = listing.loc[(row.id_psu, row.listing_group)]
        p2 = lst["selected"] / lst["listed"]
        assert row.weight_base == pytest.approx(1.0 / (p1 * p2), rel=1e-12)
    # the certainty EA is a stratum of its own for variance estimation, its households the PSUs
    cert = hh[hh["id_psu"] == "CU001"]
    assert cert["var_stratum"].nunique() == 1 and cert["var_psu"].nunique() == len(cert)


def test_replicate_weights_rerun_the_chain(weighted: tuple[Path, dict], example: dict[str, Path]) -> None:
    out, _ = weighted
    hl = pd.read_parquet(out / "household-hl.parquet")
    reps = [c for c in hl.columns if c.startswith("repw_")]
    target = pd.read_csv(example["controls_persons.csv"]).query("variable == 'sex'")["target"].sum()
    # every replicate is calibrated again, so it meets the controls too
    for col in reps[:5]:
        assert hl[col].sum() == pytest.approx(target, rel=1e-7)
    res = estimate(
        hl,
        weight="weight_person",
        statistic="mean",
        variable="hl_age",
        strata="var_stratum",
        psu="var_psu",
        replicate_prefix="repw_",
        method="jkn",
    )
    taylor = estimate(
        hl, weight="weight_person", statistic="mean", variable="hl_age", strata="var_stratum", psu="var_psu"
    )
    assert res.rows[0].estimate == pytest.approx(taylor.rows[0].estimate)
    assert 0 < res.rows[0].se < 5 * taylor.rows[0].se


def test_rerun_in_place_is_idempotent(example: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    for f in example["DATA"].iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    first = compute_weights(data, example["design.toml"])
    w1 = pd.read_parquet(first.household_table)["weight_hh"].to_numpy()
    second = compute_weights(data, example["design.toml"])
    hh = pd.read_parquet(second.household_table)
    np.testing.assert_allclose(hh["weight_hh"], w1)
    assert list(hh.columns).count("repw_1") == 1


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (
            lambda t: t.replace("respondent = [1]", "respondent = [1]\n").replace(
                "unknown = [5]", "unknown = []"
            ),
            "weights.result_unmapped",
        ),
        (lambda t: t.replace('"region", "urban"', '"region", "nope"'), "weights.design_invalid"),
    ],
)
def test_design_problems_are_reported(example: dict[str, Path], tmp_path: Path, edit, code: str) -> None:
    text = example["design.toml"].read_text(encoding="utf-8")
    design = example["design.toml"].parent / f"design-{code}.toml"
    design.write_text(edit(text), encoding="utf-8")
    with pytest.raises(WeightingError) as info:
        compute_weights(example["DATA"], design, out_dir=tmp_path)
    assert info.value.issues[0].code == code
    result = runner.invoke(
        app, ["weights", str(example["DATA"]), "--design", str(design), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1


def test_design_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "design.toml"
    bad.write_text("[psu_sample]\nfile = 'missing.csv'\n[listing]\nfile = 'l.csv'\n[disposition]\nrespondent = [1]\n")
    with pytest.raises(ToolkitError) as info:
        WeightDesign.from_file(bad)
    assert info.value.issue.code == "weights.design_invalid" and info.value.exit_code == 2


# Each mistake the schema catches before any weighting runs: (design.toml text, line, message part).
DESIGN_MISTAKES = [
    ('[nonresponse]\nmin_respondents = "twenty"\n', 8, "min_respondents: must be a whole number, not 'twenty'"),
    ('[nonresponse]\nclasses = "region"\n', 8, "classes: must be a list of strings, not 'region'"),
    ("[nonresponse]\nmax_factor = -1\n", 8, "max_factor: must be at least 1"),
    ("[trimmming]\nmethod = 'median'\n", 7, "[trimmming]: unknown section; did you mean 'trimming'?"),
    ("[replicates]\nmethod = 'jackknife'\n", 8, "'jackknife' is not one of: none, jkn, jk1, bootstrap, brr"),
    ("[replicates]\nfay = 1.0\n", 8, "fay: must be less than 1"),
    ("[calibration.persons]\nmethod = 'rake'\nmax_iter = 0\n", 9, "max_iter: must be at least 1"),
    ("[calibration.persons.derive.age]\nfrom = 'hl_age'\nbreaks = [0, 15]\nlabel = ['x']\n", 10,
     "[calibration.persons.derive.age] label: unknown key; did you mean 'labels'?"),
]


@pytest.mark.parametrize(("tail", "line", "message"), DESIGN_MISTAKES)
def test_design_mistakes_are_named_with_their_line(tmp_path: Path, tail: str, line: int, message: str) -> None:
    design = tmp_path / "design.toml"
    head = "[psu_sample]\nfile = 'p.csv'\n[listing]\nfile = 'l.csv'\n[disposition]\nrespondent = [1]\n"
    design.write_text(head + tail, encoding="utf-8")
    with pytest.raises(ToolkitError) as info:
        WeightDesign.from_file(design)
    assert info.value.exit_code == 2
    assert [(issue.location.line, message in issue.message) for issue in info.value.issues] == [(line, True)]


def test_docs_design_reference_is_the_schema() -> None:
    """The design.toml reference block of docs/weights.md passes the schema, and documents every key of it."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "weights.md").read_text(encoding="utf-8")
    block = text.split("## design.toml reference", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    assert check_config(tomllib.loads(block), DESIGN_SCHEMA, source=Path("docs/weights.md"), text=block) == []
    documented = {".".join(path) for path in line_numbers(block)}
    # [calibration.households] is documented once "and [calibration.persons]"; derived variables by example.
    documented |= {p.replace(".persons", ".households") for p in documented} | {"calibration"}
    documented |= {p.replace(".households", ".persons") for p in documented}
    missing = [
        ".".join(path)
        for path, _ in schema_paths(DESIGN_SCHEMA)
        if "*" not in path and not any(d == ".".join(path) or d.startswith(".".join(path) + ".") for d in documented)
    ]
    assert missing == []
