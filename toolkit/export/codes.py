"""Issue codes of the export stage and its vocabularies (formats, measurement levels, variable kinds)."""

from __future__ import annotations

from typing import Literal

from toolkit.errors import (
    define,
)

EXPORT_RENAMED = define("export.renamed", "A variable was renamed to meet SPSS or Stata name rules")
EXPORT_LABEL_TRUNCATED = define("export.label_truncated", "A label was cut to the format's length limit")
EXPORT_CHOICES_RECODED = define(
    "export.choices_recoded", "A choice list with non-integer names was recoded 1..n in list order"
)
EXPORT_UNKNOWN_CHOICE = define(
    "export.unknown_choice", "The data hold a value that is not in the choice list"
)
EXPORT_NO_CHOICE_LIST = define(
    "export.no_choice_list", "A select from a file or a repeat is exported as text without value labels"
)
EXPORT_TOO_MANY_VARIABLES = define(
    "export.too_many_variables", "A table has more variables than Stata/BE opens"
)
EXPORT_STRING_TRUNCATED = define("export.string_truncated", "Text longer than SPSS allows was cut")
EXPORT_BAD_VALUE = define("export.bad_value", "A geopoint, date or dateTime value could not be read")
EXPORT_MISSING_CODES = define("export.missing_codes", "More user-missing codes than SPSS can hold")
EXPORT_ORPHAN_ROWS = define(
    "export.orphan_rows", "Repeat rows whose PARENT_KEY is not a KEY of the parent table"
)
EXPORT_LANGUAGE = define("export.language", "The requested label language is not in the form")
EXPORT_FORMAT = define("export.format", "An unknown export format was requested")
EXPORT_NO_TABLES = define("export.no_tables", "The DATA folder holds no tables of this form")

Format = Literal["sav", "dta", "csv"]
FORMATS: tuple[Format, ...] = ("sav", "dta", "csv")
Measure = Literal["nominal", "ordinal", "scale"]
Kind = Literal["string", "code", "number", "date", "month", "datetime"]
