"""The three questionnaire templates end to end: simulate a few instances, ingest, export, read back.

Every table of every template must open in GNU PSPP without a warning and in pandas' Stata reader, with a
label on every variable and value labels on every select_one; the companion .sps must run in PSPP.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FORMS_DIR, require_tool
from toolkit.export import export_tables
from toolkit.ingest import ingest, read_tables, write_tables
from toolkit.simulate import simulate
from toolkit.xform import load_form

TEMPLATES = ("household", "women", "domestic_workers")


@pytest.fixture(scope="module", params=TEMPLATES)
def template_export(request, tmp_path_factory):
    source = FORMS_DIR / f"{request.param}.xlsx"
    assert source.is_file(), f"template {source} is missing"
    form = load_form(source)
    work = tmp_path_factory.mktemp(request.param)
    simulate(form, 8, work / "sim", seed=11, workers=1)
    ingested = ingest(work / "sim", form, workers=1)
    write_tables(ingested, work / "DATA")
    result = export_tables(read_tables(work / "DATA"), form, out_dir=work / "OUT", language="Russian (ru)")
    return form, result, work / "OUT"


def test_every_sav_opens_in_pspp_with_labels(template_export) -> None:
    form, result, out = template_export
    pspp = require_tool("pspp", "pspp")
    savs = [Path(f.path) for f in result.files if f.kind == "sav"]
    assert len(savs) == len(form.table_paths())
    for sav in savs:
        script = out / "check.sps"
        script.write_text(f"GET FILE='{sav.name}'.\nDISPLAY DICTIONARY.\n", encoding="utf-8")
        run = subprocess.run(
            [pspp, "-O", "format=csv", script.name], capture_output=True, text=True, cwd=out, check=False
        )
        assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
        assert "warning" not in run.stdout.lower(), run.stdout
        table = sav.stem
        variables = [r for r in result.renames if r.table == table]
        listed = {
            line.split(",")[0]: line.split(",") for line in run.stdout.splitlines() if line.count(",") >= 8
        }
        for entry in variables:
            assert entry.spss_name in listed, entry
            assert listed[entry.spss_name][2], f"{entry.spss_name} has no variable label"
        companion = subprocess.run(
            [pspp, sav.with_suffix(".sps").name], capture_output=True, text=True, cwd=out, check=False
        )
        assert companion.returncode == 0 and not (companion.stdout + companion.stderr).strip(), (
            companion.stdout
        )


def test_every_dta_reads_in_pandas_with_labels(template_export) -> None:
    form, result, _ = template_export
    dtas = [Path(f.path) for f in result.files if f.kind == "dta"]
    assert len(dtas) == len(form.table_paths())
    for dta in dtas:
        assert dta.read_bytes()[28:31] == b"118"
        reader = pd.io.stata.StataReader(dta)
        data = reader.read(convert_categoricals=False, convert_missing=True, convert_dates=False)
        labels = reader.variable_labels()
        value_labels = reader.value_labels()
        label_sets = dict(zip(data.columns, reader._lbllist, strict=True))
        for entry in (r for r in result.renames if r.table == dta.stem):
            assert labels[entry.stata_name], f"{entry.stata_name} has no variable label"
            node = form.nodes.get(entry.xlsform_path or "")
            if node is not None and node.question_type == "select_one" and node.choice_source == "list":
                assert value_labels[label_sets[entry.stata_name]], f"{entry.stata_name} has no value labels"
        assert len(pd.read_stata(dta)) == len(data)
