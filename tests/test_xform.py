"""The form model read from pyxform's XForm: nodes, binds, question types, labels per language, choice lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_md_form
from toolkit.errors import ToolkitError
from toolkit.xform import load_form, parse_xform

FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | hint::English (en) | hint::Russian (ru) | relevant | constraint | required | calculation | repeat_count | default | parameters |
| | start | start | | | | | | | | | | | |
| | select_one yn | consent | Consent? | Согласие? | read it | прочтите | | | yes | | | | |
| | begin_group | g | Group | Группа | | | ${consent}='1' | | | | | | |
| | integer | n | How many? | Сколько? | | | | . >= 0 | | | | 2 | |
| | begin_repeat | hl | Member | Член | | | | | | | ${n} | | |
| | text | hl_name | Name | Имя | | | | | | | | | |
| | select_multiple fruit | fav | Fruits of ${hl_name} | Фрукты ${hl_name} | | | | | | | | | |
| | calculate | hl_line | | | | | | | | position(..) | | | |
| | end_repeat | | | | | | | | | | | | |
| | end_group | | | | | | | | | | | | |
| | select_one ${hl_name} | head | Head | Глава | | | | | | | | | |
| | geopoint | gps | GPS | GPS | | | | | | | | | capture-accuracy=10 |
| | select_one_from_file countries.csv | cob | Country | Страна | | | | | | | | | |
| | note | nt | Note ${n} | Заметка | | | | | | | | | |
| | date | d | Date | Дата | | | | | | | | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) | iso_num |
| | yn | 1 | Yes | Да | |
| | yn | 2 | No | Нет | |
| | fruit | 1 | Apple | Яблоко | 7 |
| | fruit | 2 | Pear | Груша | 8 |
| settings |
| | form_id | version | default_language |
| | rich | 2026112701 | English (en) |
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_form(write_md_form(tmp_path_factory.mktemp("xform"), FORM))


def test_settings_and_languages(model) -> None:
    assert (model.form_id, model.version, model.root) == ("rich", "2026112701", "/data")
    assert model.languages == ("English (en)", "Russian (ru)")
    assert model.default_language == "English (en)"


@pytest.mark.parametrize(
    ("path", "kind", "question_type", "data_type", "repeat"),
    [
        ("/data/start", "field", "start", "dateTime", None),
        ("/data/consent", "field", "select_one", "string", None),
        ("/data/g", "group", "group", None, None),
        ("/data/g/n", "field", "integer", "int", None),
        ("/data/g/hl", "repeat", "repeat", None, None),
        ("/data/g/hl/hl_name", "field", "text", "string", "/data/g/hl"),
        ("/data/g/hl/fav", "field", "select_multiple", "string", "/data/g/hl"),
        ("/data/g/hl/hl_line", "field", "calculate", "string", "/data/g/hl"),
        ("/data/head", "field", "select_one", "string", None),
        ("/data/gps", "field", "geopoint", "geopoint", None),
        ("/data/cob", "field", "select_one", "string", None),
        ("/data/nt", "field", "note", "string", None),
        ("/data/d", "field", "date", "date", None),
        ("/data/meta/instanceID", "field", "instance_id", "string", None),
    ],
)
def test_node_kinds_and_types(model, path, kind, question_type, data_type, repeat) -> None:
    node = model.node(path)
    assert (node.kind, node.question_type, node.data_type, node.repeat) == (
        kind,
        question_type,
        data_type,
        repeat,
    )


def test_binds_and_body(model) -> None:
    assert model.node("/data/g").relevant.replace(" ", "") == "/data/consent='1'"
    assert model.node("/data/consent").required_always
    assert model.node("/data/g/n").constraint == ". >= 0"
    assert model.node("/data/g/n").default == "2"
    assert model.node("/data/g/hl").repeat_count == "/data/g/n"
    assert model.node("/data/g/hl/hl_line").calculate == "position(..)"
    assert model.node("/data/gps").parameters["accuracyThreshold"] == "10"


def test_labels_hints_and_outputs(model) -> None:
    consent = model.node("/data/consent")
    assert consent.label("Russian (ru)") == "Согласие?"
    assert consent.hints["English (en)"] == "read it"
    assert model.node("/data/g/hl/fav").label("English (en)") == "Fruits of ${hl_name}"
    assert model.node("/data/nt").label() == "Note ${n}"


def test_choice_sources(model) -> None:
    assert model.node("/data/consent").choice_list == "yn"
    assert model.node("/data/cob").choice_source == "file"
    head = model.node("/data/head")
    assert head.choice_source == "repeat" and head.choice_filter == "./hl_name != ''"
    fruit = model.choice_lists["fruit"]
    assert fruit.names == ("1", "2")
    assert fruit.get("2").label("Russian (ru)") == "Груша"
    assert fruit.get("1").extra["iso_num"] == "7"


def test_tables(model) -> None:
    assert model.table_paths() == ("/data", "/data/g/hl")
    assert [n.name for n in model.fields_in("/data/g/hl")] == ["hl_name", "fav", "hl_line"]
    assert [n.name for n in model.ancestors("/data/g/hl/fav")] == ["g", "hl"]


def test_refuses_doctype_and_non_xforms(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError, match="DOCTYPE"):
        parse_xform('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    with pytest.raises(ToolkitError, match="Not an XForm"):
        parse_xform("<html/>")
    with pytest.raises(ToolkitError, match="does not exist"):
        load_form(tmp_path / "missing.xml")
