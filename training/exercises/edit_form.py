"""Make the lab exercises' copies of an XLSForm without a spreadsheet program.

Participants edit `household.xlsx` in LibreOffice or Excel; this script makes the same edits, found by question
name rather than row number, so that a trainer can prepare the copies in advance and the transcript test
(tests/test_training_transcripts.py) can repeat what the labs ask for.

    python edit_form.py household.xlsx household_ex1.xlsx --insert-after ru_acct "type=select_one yesno" \
        "name=ru_mobile" "label::English (en)=Do you ...?" "required=yes"
    python edit_form.py household.xlsx household_ex2.xlsx --replace rc_interest relevant "selected(" "..."
    python edit_form.py household.xlsx household_ex3.xlsx --set rr relevant "${rr_any12} = 'yes'"

Edits apply to the survey sheet, in the order given; the other sheets and the formatting are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet


def _columns(sheet: Worksheet) -> dict[str, int]:
    return {str(cell.value).strip(): cell.column for cell in sheet[1] if cell.value is not None}


def _row_of(sheet: Worksheet, name: str) -> int:
    column = _columns(sheet)["name"]
    for row in range(2, sheet.max_row + 1):
        if str(sheet.cell(row, column).value or "").strip() == name:
            return row
    sys.exit(f"edit_form: no row named {name!r} on the survey sheet")


def _column(sheet: Worksheet, header: str) -> int:
    columns = _columns(sheet)
    if header not in columns:
        sys.exit(f"edit_form: the survey sheet has no column {header!r}")
    return columns[header]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--insert-after", nargs="+", metavar=("NAME", "COLUMN=VALUE"), action="append", default=[])
    parser.add_argument("--set", nargs=3, metavar=("NAME", "COLUMN", "VALUE"), action="append", default=[])
    parser.add_argument("--replace", nargs=4, metavar=("NAME", "COLUMN", "OLD", "NEW"), action="append", default=[])
    args = parser.parse_args(argv)
    book = load_workbook(args.source)
    sheet = book["survey"]
    for name, column, value in args.set:
        sheet.cell(_row_of(sheet, name), _column(sheet, column)).value = value
    for name, column, old, new in args.replace:
        cell = sheet.cell(_row_of(sheet, name), _column(sheet, column))
        text = str(cell.value or "")
        if old not in text:
            sys.exit(f"edit_form: {name} {column} does not contain {old!r}")
        cell.value = text.replace(old, new, 1)
    for name, *cells in args.insert_after:
        row = _row_of(sheet, name) + 1
        sheet.insert_rows(row)
        for item in cells:
            header, _, value = item.partition("=")
            sheet.cell(row, _column(sheet, header)).value = value
    book.save(args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
