"""`migkit weights DATA --design design.toml` on a DATA folder built here with the ingest conventions
(docs/tables.md), and `migkit weights rake TABLE`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from typer.testing import CliRunner

from tests.conftest import build_weights_example
from toolkit.cli import app
from toolkit.config import check_config, line_numbers, schema_paths
from toolkit.errors import ToolkitError
from toolkit.estimate import estimate
from toolkit.weights import WeightDesign, WeightingError, compute_weights, read_table
from toolkit.weights.config import DESIGN_SCHEMA

runner = CliRunner()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_weights_example(tmp_path_factory.mktemp("wex"))


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


def test_bootstrap_needs_two_replicates(example: dict[str, Path]) -> None:
    """R's bootstrap scale is 1/(R − 1): one replicate would divide by zero (fay = 1 is caught by the schema)."""
    design = _variant(example, "bad-replicates", lambda t: t.replace('method = "jkn"', 'method = "bootstrap"\nn = 1'))
    with pytest.raises(ToolkitError) as info:
        WeightDesign.from_file(design)
    assert info.value.issue.code == "weights.design_invalid" and "at least 2 replicates" in info.value.issue.message


# --- `migkit weights rake` ----------------------------------------------------------------------------------


@pytest.fixture
def small_table(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(2)
    n = 400
    table = pd.DataFrame(
        {
            "sex": rng.choice(["m", "f"], n),
            "age": rng.choice(["young", "mid", "old"], n),
            "w": rng.uniform(1, 4, n),
        }
    )
    table.loc[:5, ["sex", "age"]] = [
        ["m", "young"],
        ["f", "mid"],
        ["m", "old"],
        ["f", "young"],
        ["m", "mid"],
        ["f", "old"],
    ]
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    margins = tmp_path / "margins.csv"
    pd.DataFrame(
        {
            "variable": ["sex", "sex", "age", "age", "age"],
            "level": ["m", "f", "young", "mid", "old"],
            "target": [4900, 5100, 4000, 3500, 2500],
        }
    ).to_csv(margins, index=False)
    return path, margins


def _rake_cli(path: Path, margins: Path, out: Path, *extra: str):
    return runner.invoke(
        app,
        ["weights", "rake", str(path), "--weight", "w", "--margins", str(margins), "--out", str(out), *extra],
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".sav", ".dta"])
def test_rake_command_writes_the_table(small_table: tuple[Path, Path], tmp_path: Path, suffix: str) -> None:
    path, margins = small_table
    if suffix != ".csv":  # read every supported input format
        src = pd.read_csv(path)
        path = tmp_path / f"in{suffix}"
        if suffix == ".parquet":
            src.to_parquet(path)
        else:
            (pyreadstat.write_sav if suffix == ".sav" else pyreadstat.write_dta)(src, str(path))
    out = tmp_path / f"out{suffix}"
    result = _rake_cli(path, margins, out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["converged"] and payload["max_rel_error"] <= 1e-6 and payload["iterations"] >= 2
    assert {"n", "sum", "min", "max", "cv", "deff_kish", "n_eff"} <= set(payload["diagnostics"])
    raked = read_table(out)
    assert raked["weight_raked"].sum() == pytest.approx(10_000, rel=1e-6)
    assert raked.groupby("sex")["weight_raked"].sum()["m"] == pytest.approx(4900, rel=1e-6)


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([("sex", "x", 100)], "target level sex=x"),  # target level absent from the sample
        ([("age", "old", 3500)], "grand totals"),  # totals 10,000 vs 11,000
    ],
)
def test_rake_command_refuses(small_table: tuple[Path, Path], tmp_path: Path, rows, needle: str) -> None:
    path, margins = small_table
    m = pd.read_csv(margins)
    for var, lev, target in rows:
        if ((m.variable == var) & (m.level == lev)).any():
            m.loc[(m.variable == var) & (m.level == lev), "target"] = target
        else:
            m.loc[len(m)] = [var, lev, target]
    m.to_csv(margins, index=False)
    result = _rake_cli(path, margins, tmp_path / "o.csv")
    assert result.exit_code == 1
    assert needle in result.stderr.replace("\n", " ")
    assert not (tmp_path / "o.csv").exists()


def test_rake_command_nonconvergence(small_table: tuple[Path, Path], tmp_path: Path) -> None:
    path, margins = small_table
    args = ("--max-iter", "1", "--tol", "1e-12")
    assert _rake_cli(path, margins, tmp_path / "o.csv", *args).exit_code == 1
    warned = _rake_cli(path, margins, tmp_path / "o.csv", *args, "--on-nonconvergence", "warn", "--json")
    assert warned.exit_code == 1 and json.loads(warned.stdout)["converged"] is False
    assert (tmp_path / "o.csv").exists()


def _margins_sex(path: Path) -> Path:
    pd.DataFrame({"variable": ["sex", "sex"], "level": [1, 2], "target": [480.0, 520.0]}).to_csv(path, index=False)
    return path


def _labelled_rows() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 60
    return pd.DataFrame(
        {
            "hhid": [f"0161291013{i:04d}" for i in range(n)],
            "sex": rng.choice([1.0, 2.0], n),
            "q1": rng.choice([1.0, 2.0, 8.0, 9.0], n),  # 8 = don't know, 9 = refused: user-missing
            "age": rng.integers(15, 80, n).astype(float),
            "w": rng.uniform(1, 30, n),
        }
    )


def test_rake_command_keeps_sav_metadata(tmp_path: Path) -> None:
    source = tmp_path / "in.sav"
    labels = {"hhid": "Household ID", "sex": "Sex of member", "q1": "Sent money home?", "age": "Age", "w": "Design weight"}
    value_labels = {"sex": {1: "Male", 2: "Female"}, "q1": {1: "Yes", 2: "No", 8: "Don't know", 9: "Refused"}}
    pyreadstat.write_sav(
        _labelled_rows(),
        str(source),
        file_label="Migration survey 2026",
        column_labels=labels,
        variable_value_labels=value_labels,
        missing_ranges={"q1": [8, 9]},
        variable_measure={"sex": "nominal", "q1": "nominal", "age": "scale", "w": "scale", "hhid": "nominal"},
        variable_format={"age": "F3.0", "sex": "F1.0"},
    )
    out = tmp_path / "out.sav"
    result = _rake_cli(source, _margins_sex(tmp_path / "m.csv"), out)
    assert result.exit_code == 0, result.output
    before, meta_in = pyreadstat.read_sav(str(source), user_missing=True)
    after, meta = pyreadstat.read_sav(str(out), user_missing=True)
    assert meta.file_label == "Migration survey 2026"
    assert {k: v for k, v in meta.column_names_to_labels.items() if k != "weight_raked"} == labels
    assert "w" in meta.column_names_to_labels["weight_raked"]  # says what it was raked from
    assert meta.variable_value_labels == value_labels
    assert meta.missing_ranges == meta_in.missing_ranges and meta.missing_ranges["q1"]
    assert meta.variable_measure == {**meta_in.variable_measure, "weight_raked": "scale"}
    assert {k: meta.original_variable_types[k] for k in ("age", "sex")} == {"age": "F3.0", "sex": "F1.0"}
    pd.testing.assert_frame_equal(after.drop(columns="weight_raked"), before)  # DK/refused are still 8/9
    assert (after["q1"] == 9).any()
    assert after.groupby("sex")["weight_raked"].sum()[1.0] == pytest.approx(480, rel=1e-6)


def test_rake_command_to_another_format_says_what_it_drops(tmp_path: Path) -> None:
    source = tmp_path / "in.sav"
    pyreadstat.write_sav(
        _labelled_rows(), str(source), column_labels={"sex": "Sex of member"},
        variable_value_labels={"sex": {1: "Male", 2: "Female"}}, missing_ranges={"q1": [8, 9]},
    )
    out = tmp_path / "out.dta"
    result = _rake_cli(source, _margins_sex(tmp_path / "m.csv"), out, "--json")
    assert result.exit_code == 0, result.output
    assert [i["code"] for i in json.loads(result.stdout)["issues"]] == ["weights.metadata_dropped"]
    written, meta = pyreadstat.read_dta(str(out))
    assert meta.column_names_to_labels["sex"] == "Sex of member"
    assert meta.variable_value_labels["sex"] == {1: "Male", 2: "Female"}
    assert written["q1"].isna().sum() == _labelled_rows()["q1"].isin([8, 9]).sum()  # missing, as SPSS meant


def test_rake_command_keeps_dta_metadata(tmp_path: Path) -> None:
    source = tmp_path / "in.dta"
    rows = _labelled_rows()
    # Stata extended missing values: .d (don't know) and .r (refused), written as their letters.
    rows["q1"] = rows["q1"].astype(object).replace({8.0: "d", 9.0: "r"})
    labels = {"hhid": "Household ID", "sex": "Sex of member", "q1": "Sent money home?", "age": "Age", "w": "Design weight"}
    value_labels = {"sex": {1: "Male", 2: "Female"}, "q1": {1: "Yes", 2: "No"}}
    pyreadstat.write_dta(
        rows, str(source), file_label="Migration survey", column_labels=labels, variable_value_labels=value_labels,
        missing_user_values={"q1": ["d", "r"]},
    )
    out = tmp_path / "out.dta"
    result = _rake_cli(source, _margins_sex(tmp_path / "m.csv"), out)
    assert result.exit_code == 0, result.output
    before, _ = pyreadstat.read_dta(str(source), user_missing=True)
    after, meta = pyreadstat.read_dta(str(out), user_missing=True)
    assert {k: v for k, v in meta.column_names_to_labels.items() if k != "weight_raked"} == labels
    assert meta.column_names_to_labels["weight_raked"]
    assert meta.variable_value_labels == value_labels
    assert meta.file_label == "Migration survey"
    pd.testing.assert_frame_equal(after.drop(columns="weight_raked"), before)  # .d/.r are still .d/.r
    assert (after["q1"] == "r").any()


def test_rake_command_keeps_csv_ids_and_integers(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    rows = _labelled_rows()
    text = rows.assign(
        sex=rows["sex"].astype(int),
        age=rows["age"].astype(int).astype(str).where(rows.index % 7 != 0, ""),  # an integer column with blanks
        q1=rows["q1"].astype(int),
    )
    text.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    result = _rake_cli(source, _margins_sex(tmp_path / "m.csv"), out)
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    original = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert written["hhid"].iloc[0] == "01612910130000"  # leading zero kept
    for column in ("hhid", "sex", "age", "q1"):
        assert written[column].tolist() == original[column].tolist(), column  # no 1.0, no lost zeros
    raked = pd.to_numeric(written["weight_raked"])
    assert raked.groupby(written["sex"]).sum()["1"] == pytest.approx(480, rel=1e-6)


def test_rake_command_impossible_margins_fail(small_table: tuple[Path, Path], tmp_path: Path) -> None:
    """Every case with age=young is male in this table, so young → 6000 and m → 3000 cannot both hold: the
    factors overflow and no weights meet the margins (once reported as converged, exit 0)."""
    path, margins = small_table
    table = pd.read_csv(path)
    table.loc[table["age"] == "young", "sex"] = "m"
    table.to_csv(path, index=False)
    pd.DataFrame(
        {
            "variable": ["sex", "sex", "age", "age", "age"],
            "level": ["m", "f", "young", "mid", "old"],
            "target": [3000, 7000, 6000, 2500, 1500],
        }
    ).to_csv(margins, index=False)
    out = tmp_path / "o.csv"
    failed = _rake_cli(path, margins, out, "--max-iter", "1000")
    assert failed.exit_code == 1 and "weights.not_converged" in failed.stderr
    assert not out.exists()
    warned = _rake_cli(path, margins, out, "--max-iter", "1000", "--on-nonconvergence", "warn", "--json")
    assert warned.exit_code == 1
    payload = json.loads(warned.stdout)
    assert payload["converged"] is False and payload["max_rel_error"] > 1e-6
    written = read_table(out)
    young = written.loc[written["age"] == "young", "weight_raked"].sum()
    level = next(m for m in payload["margins"] if m["variable"] == "age" and m["level"] == "young")
    assert level["achieved"] == pytest.approx(young, rel=1e-9)


def _variant(example: dict[str, Path], name: str, edit) -> Path:
    design = example["design.toml"].parent / f"design-{name}.toml"
    design.write_text(edit(example["design.toml"].read_text(encoding="utf-8")), encoding="utf-8")
    return design


def test_frame_file_gives_the_same_base_weights(example: dict[str, Path], tmp_path: Path) -> None:
    design = _variant(
        example,
        "frame",
        lambda t: t.replace(
            'stratum_mos = "stratum_mos"',
            'frame_file = "frame.csv"\nframe_stratum = "stratum"\nframe_mos = "mos"',
        ),
    )
    a = compute_weights(example["DATA"], example["design.toml"], out_dir=tmp_path / "a")
    b = compute_weights(example["DATA"], design, out_dir=tmp_path / "b")
    wa = pd.read_parquet(a.household_table)["weight_base"]
    wb = pd.read_parquet(b.household_table)["weight_base"]
    np.testing.assert_allclose(wa, wb, rtol=1e-12)
    assert all(0.8 < row["ratio"] < 1.25 for row in b.stratum_check.values())


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("poststratify", ""),
        ("linear", ""),
        ("linear_bounded", "bounds = [0.5, 2.0]"),
        ("logit", "bounds = [0.5, 2.0]"),
    ],
)
def test_household_calibration_methods(
    example: dict[str, Path], tmp_path: Path, method: str, extra: str
) -> None:
    design = _variant(
        example,
        f"hh-{method}",
        lambda t: t.replace(
            '[calibration.households]\nmethod = "rake"',
            f'[calibration.households]\nmethod = "{method}"\n{extra}',
        ).replace('method = "jkn"', 'method = "none"'),
    )
    res = compute_weights(example["DATA"], design, out_dir=tmp_path)
    step = next(s for s in res.steps if s["step"].startswith("calibrate_households"))
    assert step["method"] == method and step["max_rel_error"] < 1e-6
    if extra:
        factor = step["summary"]["factor"]
        assert factor["min"] >= 0.5 - 1e-9 and factor["max"] <= 2.0 + 1e-9


def test_trimming_cycles_are_reported(example: dict[str, Path], tmp_path: Path) -> None:
    design = _variant(
        example,
        "trim",
        lambda t: (
            t.replace('method = "median"            # none', 'method = "quantile"          # none')
            .replace("value = 3.5", "value = 0.95")
            .replace('method = "jkn"', 'method = "none"')
        ),
    )
    res = compute_weights(example["DATA"], design, out_dir=tmp_path)
    trims = [s for s in res.steps if s["step"].startswith("trim[")]
    assert trims and trims[0]["n_trimmed"] > 0 and trims[0]["mass_moved"] > 0
    assert trims[0]["summary"]["max"] <= trims[0]["cap"] * (1 + 1e-9)
    assert trims[0]["summary"]["sum"] == pytest.approx(
        next(s for s in res.steps if s["step"] == "nonresponse")["summary"]["sum"], rel=1e-9
    )


@pytest.mark.parametrize(("method", "n"), [("bootstrap", 12), ("jk1", None)])
def test_other_replicate_methods(
    example: dict[str, Path], tmp_path: Path, method: str, n: int | None
) -> None:
    design = _variant(
        example, f"rep-{method}", lambda t: t.replace('method = "jkn"', f'method = "{method}"\nn = {n or 0}')
    )
    res = compute_weights(example["DATA"], design, out_dir=tmp_path)
    assert res.replicates is not None and res.replicates["method"] == method
    hl = pd.read_parquet(res.person_table)
    reps = [c for c in hl.columns if c.startswith("repw_")]
    assert len(reps) == (n or res.replicates["n"])
    row = estimate(
        hl,
        weight="weight_person",
        statistic="mean",
        variable="hl_age",
        replicate_prefix="repw_",
        method=method,
    ).rows[0]  # type: ignore[arg-type]
    assert np.isfinite(row.se) and row.se > 0


@pytest.mark.parametrize("on_nonconvergence", ["error", "warn"])
def test_chain_impossible_person_margins_are_not_converged(
    example: dict[str, Path], tmp_path: Path, on_nonconvergence: str
) -> None:
    """A derived margin `young` (age < 30) with a target below that of its part age_group=0-14: the person
    raking cannot meet both, in the `migkit weights` chain as in `weights rake`."""
    controls = pd.read_csv(example["design.toml"].parent / "controls_persons.csv")
    total = controls.loc[controls["variable"] == "sex", "target"].sum()
    extra = pd.DataFrame({"variable": ["young", "young"], "level": ["yes", "no"], "target": [20_000, total - 20_000]})
    pd.concat([controls, extra]).to_csv(example["design.toml"].parent / "controls_impossible.csv", index=False)
    design = _variant(
        example,
        f"impossible-{on_nonconvergence}",
        lambda t: t.replace('margins = "controls_persons.csv"', 'margins = "controls_impossible.csv"')
        .replace("max_iter = 200", f'max_iter = 1000\non_nonconvergence = "{on_nonconvergence}"')
        .replace(
            "[calibration.persons.derive.sex]",
            '[calibration.persons.derive.young]\nfrom = "hl_age"\nbreaks = [0, 30, 200]\nlabels = ["yes", "no"]\n\n'
            "[calibration.persons.derive.sex]",
        )
        .replace('method = "jkn"', 'method = "none"'),
    )
    if on_nonconvergence == "error":
        with pytest.raises(WeightingError) as info:
            compute_weights(example["DATA"], design, out_dir=tmp_path)
        assert info.value.issues[0].code == "weights.not_converged"
        return
    res = compute_weights(example["DATA"], design, out_dir=tmp_path)
    step = next(s for s in res.steps if s["step"] == "calibrate_persons")
    assert step["converged"] is False and step["max_rel_error"] > 1e-6
    assert "weights.not_converged" in {i.code for i in res.issues}


def test_brr_needs_two_psus_per_stratum(example: dict[str, Path], tmp_path: Path) -> None:
    design = _variant(example, "rep-brr", lambda t: t.replace('method = "jkn"', 'method = "brr"'))
    with pytest.raises(WeightingError) as info:
        compute_weights(example["DATA"], design, out_dir=tmp_path)
    assert info.value.issues[0].code == "weights.replicate_design"


def test_one_person_selected_among_k(example: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    for f in example["DATA"].iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    roster = pd.read_parquet(data / "household-hl.parquet")
    roster["k_eligible"] = 3
    roster.to_parquet(data / "household-hl.parquet", index=False)
    design = _variant(
        example,
        "k",
        lambda t: (
            t.replace(
                'listing_group = "listing_group"',
                'listing_group = "listing_group"\nselected_among = "k_eligible"',
            )
            .replace('[calibration.persons]\nmethod = "rake"', '[calibration.persons]\nmethod = "none"')
            .replace('method = "jkn"', 'method = "none"')
        ),
    )
    res = compute_weights(data, design, out_dir=tmp_path / "out")
    hl = pd.read_parquet(res.person_table)
    np.testing.assert_allclose(hl["weight_person"], 3 * hl["weight_hh"])


def test_manifest_records_weights_and_design(weighted: tuple[Path, dict]) -> None:
    out, _ = weighted
    manifest = json.loads((out / "tables.json").read_text(encoding="utf-8"))
    assert manifest["form_id"] == "household"  # what ingest wrote is kept
    entries = {e["file"]: e for e in manifest["tables"].values()}  # the example's list layout comes back as ingest's
    assert entries["household.parquet"]["weights"] == ["weight_base", "weight_hh"]
    assert entries["household-hl.parquet"]["weights"] == ["weight_hh", "weight_person"]
    assert "repw_1" in {c["name"] for c in entries["household-hl.parquet"]["columns"]}
    assert manifest["design"]["strata"] == "var_stratum" and manifest["design"]["psu"] == "var_psu"
    assert manifest["design"]["replicates"]["method"] == "jkn"


def test_weights_command_renders_tables(example: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["weights", str(example["DATA"]), "--design", str(example["design.toml"]), "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "Weight diagnostics after every step" in result.stdout
    assert "calibrate_persons" in result.stdout and "converged=True" in result.stdout
    assert "certainty unit" in result.stderr


def test_weights_usage(tmp_path: Path) -> None:
    assert runner.invoke(app, ["weights", str(tmp_path)]).exit_code == 2  # --design is required
    missing = runner.invoke(app, ["weights", str(tmp_path / "nope"), "--design", str(tmp_path / "d.toml")])
    assert missing.exit_code == 2 and "design file does not exist" in missing.stderr


def test_household_only_survey_with_integer_result_codes(example: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    hh = pd.read_parquet(example["DATA"] / "household.parquet")
    hh["hh_result"] = hh["hh_result"].astype("Int64")  # an `integer` question instead of select_one
    hh.to_parquet(data / "household.parquet", index=False)
    design = _variant(example, "hh-only", lambda t: t.replace('method = "jkn"', 'method = "none"'))
    res = compute_weights(data, design)
    assert res.person_table is None
    out = pd.read_parquet(res.household_table)
    assert (out.loc[out["hh_result"] == 1, "weight_hh"] > 0).all()
    assert out["resp_status"].isin(["ER", "EN", "IN"]).all()
    assert "weights.table_missing" in {i.code for i in res.issues}


def test_individual_interview_weights(example: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "DATA"
    data.mkdir()
    for f in example["DATA"].iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    roster = pd.read_parquet(data / "household-hl.parquet")
    rng = np.random.default_rng(4)
    eligible = (roster["hl_age"] >= 15) & (roster["hl_age"] < 65)
    roster["ind_result"] = pd.array([None] * len(roster), dtype="string")
    roster.loc[eligible, "ind_result"] = np.where(rng.random(int(eligible.sum())) < 0.8, "1", "2")
    roster.to_parquet(data / "household-hl.parquet", index=False)
    section = (
        '[individuals]\nresult = "ind_result"\nrespondent = [1]\nnonrespondent = [2]\nclasses = ["region"]'
    )
    design = _variant(example, "individuals", lambda t: f"{t}\n{section}\n")
    res = compute_weights(data, design, out_dir=tmp_path / "out")
    hl = pd.read_parquet(res.person_table)
    done = (hl["ind_result"] == "1").fillna(False).to_numpy()
    assert (hl.loc[done, "weight_individual"] > 0).all() and (hl.loc[~done, "weight_individual"] == 0).all()
    # Within each class the respondents carry the household weight of every eligible member.
    hh = pd.read_parquet(res.household_table).set_index("KEY")
    region = (
        hl["PARENT_KEY"]
        .map(hh["id_psu"])
        .map(pd.read_csv(example["psu_sample.csv"]).set_index("ea")["region"])
    )
    base = hl["weight_hh"].where(hl["ind_result"].notna(), 0.0)
    np.testing.assert_allclose(hl["weight_individual"].groupby(region).sum(), base.groupby(region).sum())
    assert len([c for c in hl.columns if c.startswith("repi_")]) == res.replicates["n"]
    row = estimate(
        hl,
        weight="weight_individual",
        statistic="mean",
        variable="hl_age",
        strata="var_stratum",
        psu="var_psu",
        replicate_prefix="repi_",
        method="jkn",
    ).rows[0]
    assert 15 <= row.estimate < 65 and row.se > 0
    manifest = json.loads((tmp_path / "out" / "tables.json").read_text(encoding="utf-8"))
    entry = manifest["tables"]["household-hl"]
    assert "weight_individual" in entry["weights"]
    assert "individuals" in [s["step"] for s in res.steps]


def test_bad_counts_in_input_files_are_located(example: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for f in example["design.toml"].parent.glob("*.csv"):
        (folder / f.name).write_bytes(f.read_bytes())
    listing = pd.read_csv(folder / "listing.csv", dtype={"listed": "object"})
    listing.loc[3, "listed"] = "n/a"
    listing.to_csv(folder / "listing.csv", index=False)
    design = folder / "design.toml"
    design.write_text(example["design.toml"].read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(WeightingError) as info:
        compute_weights(example["DATA"], design, out_dir=tmp_path / "out")
    issue = info.value.issues[0]
    assert (issue.location.file, issue.location.variable, issue.location.row) == ("listing.csv", "listed", 5)
