"""Round-trip properties of the export: whatever the names, labels and text, the files open and read back.

Forms are generated as XForms (Cyrillic names are legal XML names, and ODK accepts them), exported, then read
back by pandas' own Stata reader and by GNU PSPP.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd
import pyreadstat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import require_tool
from toolkit.export import export_tables, truncate_bytes, truncate_chars
from toolkit.settings import (
    SPSS_RESERVED_WORDS,
    SPSS_VALUE_LABEL_MAX_BYTES,
    SPSS_VARIABLE_LABEL_MAX_BYTES,
    STATA_RESERVED_NAMES,
    STATA_VARIABLE_LABEL_MAX_CHARS,
)
from toolkit.xform import parse_xform

LETTERS = "abcxyzABCXYZабвгджзийклмнопрстуфхцчшщыэюяёАБВЖЯқғұүөәһҳҷӣӯ"
NAME = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(LETTERS + "_"),
    st.text(alphabet=LETTERS + "0123456789_", max_size=70),
) | st.sampled_from(
    sorted({"by", "BY", "with", "all", "TO", "in", "if", "int", "long", "strL", "str9", "_n"})
)
# Labels: any printable text, Cyrillic heavy, sometimes long; XML cannot carry control characters.
LABEL = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1,
    max_size=400,
) | st.text(alphabet="Жжщ ЫЁё€😀аб", min_size=1, max_size=300)
VALUE = (
    st.none()
    | st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
    | st.text(alphabet="Київ ", min_size=200, max_size=3000)
)


def _xform(fields: list[tuple[str, str]], choices: list[str]) -> str:
    texts = "".join(
        f'<text id="/data/{name}:label"><value>{escape(label)}</value></text>' for name, label in fields
    ) + "".join(f'<text id="c-{i}"><value>{escape(label)}</value></text>' for i, label in enumerate(choices))
    instance = "".join(f"<{name}/>" for name, _ in fields)
    items = "".join(f"<item><itextId>c-{i}</itextId><name>{i + 1}</name></item>" for i in range(len(choices)))
    binds = "".join(f'<bind nodeset="/data/{name}" type="string"/>' for name, _ in fields)
    body = "".join(
        f'<input ref="/data/{name}"><label ref="jr:itext(\'/data/{name}:label\')"/></input>'
        for name, _ in fields[1:]
    )
    first = fields[0][0]
    select = (
        f'<select1 ref="/data/{first}"><label ref="jr:itext(\'/data/{first}:label\')"/>'
        "<itemset nodeset=\"instance('c')/root/item\">"
        '<value ref="name"/><label ref="jr:itext(itextId)"/></itemset>'
        "</select1>"
    )
    return (
        '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" '
        'xmlns:jr="http://openrosa.org/javarosa"><h:head><h:title>Round trip</h:title><model>'
        f'<itext><translation lang="Russian (ru)" default="true()">{texts}</translation></itext>'
        f'<instance><data id="rt" version="1">{instance}</data></instance>'
        f'<instance id="c"><root>{items}</root></instance>{binds}</model></h:head>'
        f"<h:body>{select}{body}</h:body></h:html>"
    )


@st.composite
def tables(draw):
    names = draw(st.lists(NAME, min_size=1, max_size=8, unique_by=str.lower))
    names = [n for n in names if n.lower() not in {"key"}] or ["q"]
    labels = draw(st.lists(LABEL, min_size=len(names), max_size=len(names)))
    choices = draw(st.lists(LABEL, min_size=1, max_size=4))
    rows = draw(st.integers(min_value=1, max_value=4))
    frame = {"KEY": [f"uuid:{i}" for i in range(rows)]}
    frame[names[0]] = draw(
        st.lists(
            st.none() | st.sampled_from([str(i + 1) for i in range(len(choices))]),
            min_size=rows,
            max_size=rows,
        )
    )
    for name in names[1:]:
        frame[name] = draw(st.lists(VALUE, min_size=rows, max_size=rows))
    return list(zip(names, labels, strict=True)), choices, pd.DataFrame(frame)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(tables())
def test_export_round_trip(case) -> None:
    fields, choices, frame = case
    form = parse_xform(_xform(fields, choices))
    pspp = require_tool("pspp", "pspp")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result = export_tables({"rt": frame}, form, formats=["sav", "dta"], out_dir=out)
        renames = {r.name: r for r in result.renames}
        stata_names = [r.stata_name for r in result.renames]
        spss_names = [r.spss_name for r in result.renames]
        for name in stata_names:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name) and name not in STATA_RESERVED_NAMES
        for name in spss_names:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) and len(name) <= 64
            assert name.upper() not in SPSS_RESERVED_WORDS
        assert len({n.lower() for n in stata_names}) == len(stata_names)
        assert len({n.lower() for n in spss_names}) == len(spss_names)

        reader = pd.io.stata.StataReader(out / "rt.dta")
        data = reader.read(convert_categoricals=False)
        var_labels = reader.variable_labels()
        value_labels = reader.value_labels()
        label_sets = dict(zip(data.columns, reader._lbllist, strict=True))
        for index, (name, _) in enumerate(fields):
            full = form.by_name(name).label() or name  # a blank label falls back to the name
            entry = renames[name]
            assert var_labels[entry.stata_name] == truncate_chars(full, STATA_VARIABLE_LABEL_MAX_CHARS)[0]
            if index == 0:
                expected = {i + 1: form.choice_lists["c"].choices[i].label() for i in range(len(choices))}
                assert value_labels[label_sets[entry.stata_name]] == expected
                codes = pd.to_numeric(frame[name])
                assert data[entry.stata_name].fillna(-1).tolist() == codes.fillna(-1).astype(float).tolist()
            else:
                assert data[entry.stata_name].fillna("").tolist() == frame[name].fillna("").tolist()

        script = out / "check.sps"
        script.write_text("GET FILE='rt.sav'.\nDISPLAY DICTIONARY.\n", encoding="utf-8")
        run = subprocess.run(
            [pspp, "-O", "format=csv", script.name], capture_output=True, text=True, cwd=out, check=False
        )
        assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
        assert "warning" not in run.stdout.lower(), run.stdout
        sav, meta = pyreadstat.read_sav(out / "rt.sav")
        for index, (name, _) in enumerate(fields):
            entry = renames[name]
            full = form.by_name(name).label() or name
            assert (
                meta.column_names_to_labels[entry.spss_name]
                == truncate_bytes(full, SPSS_VARIABLE_LABEL_MAX_BYTES)[0]
            )
            if index == 0:
                labels = meta.variable_value_labels[entry.spss_name]
                assert labels == {
                    float(i + 1): truncate_bytes(
                        form.choice_lists["c"].choices[i].label(), SPSS_VALUE_LABEL_MAX_BYTES
                    )[0]
                    for i in range(len(choices))
                }
            else:
                assert (
                    sav[entry.spss_name].fillna("").str.rstrip().tolist()
                    == frame[name].fillna("").str.rstrip().tolist()
                )


CHOICE_LABEL = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1,
    max_size=40,
)


@st.composite
def multiple_cases(draw):
    question = draw(LABEL)
    choices = draw(
        st.lists(CHOICE_LABEL, min_size=1, max_size=6, unique_by=lambda s: " ".join(s.split()).lower())
    )
    # Every choice label must stay distinct after whitespace is collapsed (blank ones fall back to the name).
    choices = [c if " ".join(c.split()) else f"choice {i}" for i, c in enumerate(choices)]
    names = [str(i + 1) for i in range(len(choices))]
    answers = draw(
        st.lists(
            st.none() | st.lists(st.sampled_from(names), min_size=1, unique=True).map(" ".join),
            min_size=1,
            max_size=5,
        )
    )
    title = draw(LABEL)
    return question, choices, answers, title


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multiple_cases())
def test_select_multiple_round_trip(case) -> None:
    question, choices, answers, title = case
    texts = f'<text id="/data/pick:label"><value>{escape(question)}</value></text>' + "".join(
        f'<text id="c-{i}"><value>{escape(label)}</value></text>' for i, label in enumerate(choices)
    )
    items = "".join(f"<item><itextId>c-{i}</itextId><name>{i + 1}</name></item>" for i in range(len(choices)))
    xform = (
        '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" '
        f'xmlns:jr="http://openrosa.org/javarosa"><h:head><h:title>{escape(title)}</h:title><model>'
        f'<itext><translation lang="Russian (ru)" default="true()">{texts}</translation></itext>'
        '<instance><data id="mr" version="1"><pick/></data></instance>'
        f'<instance id="c"><root>{items}</root></instance><bind nodeset="/data/pick" type="string"/>'
        '</model></h:head><h:body><select ref="/data/pick"><label ref="jr:itext(\'/data/pick:label\')"/>'
        '<itemset nodeset="instance(\'c\')/root/item"><value ref="name"/><label ref="jr:itext(itextId)"/>'
        "</itemset></select></h:body></h:html>"
    )
    form = parse_xform(xform)
    frame = pd.DataFrame({"KEY": [f"uuid:{i}" for i in range(len(answers))], "pick": answers})
    pspp = require_tool("pspp", "pspp")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        export_tables({"mr": frame}, form, formats=["sav", "dta"], out_dir=out)
        script = (out / "mr.sps").read_text(encoding="utf-8")
        assert max(len(line.encode("utf-8")) for line in script.splitlines()) <= 251
        (out / "check.sps").write_text(script + "MRSETS /DISPLAY NAME=ALL.\n", encoding="utf-8")
        run = subprocess.run(
            [pspp, "-O", "format=csv", "check.sps"], capture_output=True, text=True, cwd=out, check=False
        )
        assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
        assert "warning" not in run.stdout.lower() and "error" not in run.stdout.lower(), run.stdout
        assert ("$pick" in run.stdout) == (len(choices) >= 2)  # a set needs two variables
        reader = pd.io.stata.StataReader(out / "mr.dta")
        data = reader.read(convert_categoricals=False)
        labels = reader.variable_labels()
        for position, name in enumerate(form.choice_lists["c"].names):
            expected = [None if a is None else float(name in a.split()) for a in answers]
            assert [None if pd.isna(v) else v for v in data[f"pick_{name}"]] == expected
            choice = " ".join(choices[position].split())
            if len(choice) < 60:
                assert labels[f"pick_{name}"].endswith(f": {choice}")


NUMBER_FORM = (
    '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">'
    "<h:head><h:title>Numbers</h:title><model>"
    '<instance><data id="nb" version="1"><n/></data></instance><bind nodeset="/data/n" type="int"/>'
    '</model></h:head><h:body><input ref="/data/n"><label>How many?</label></input></h:body></h:html>'
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.none() | st.sampled_from([-98, -99]) | st.integers(-5, 500), max_size=260))
def test_numeric_sentinels_become_stata_extended_missing_anywhere(values) -> None:
    """Whatever the order of answers, skips and DK/refused (narwhals sniffs only the first 100 values)."""
    form = parse_xform(NUMBER_FORM)
    frame = pd.DataFrame(
        {"KEY": [f"uuid:{i}" for i in range(len(values))], "n": pd.array(values, dtype="Int64")}
    )
    with tempfile.TemporaryDirectory() as tmp:
        export_tables({"nb": frame}, form, formats=["dta"], out_dir=Path(tmp))
        data = pd.io.stata.StataReader(Path(tmp) / "nb.dta").read(
            convert_missing=True, convert_categoricals=False
        )
    expected = [
        {None: ".", -98: ".d", -99: ".r"}.get(v, str(float(v)) if v is not None else ".") for v in values
    ]
    assert [str(v) for v in data["n"]] == expected
