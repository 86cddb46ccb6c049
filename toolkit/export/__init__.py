"""Labelled SPSS (.sav), Stata (.dta, release 118) and CSV exports of the DATA tables, with companion syntax.

One file per table (the main level and each repeat), linked by KEY/PARENT_KEY and the integer ids written by
ingest. Variable labels are the question labels in one language; select_one answers become numeric codes with
value labels; select_multiple answers become 0/1 dummies taken from the form's choice list (plus the original
space-separated text); geopoints are split into latitude/longitude/altitude/accuracy; dates and dateTimes
become real date types; don't-know, refused and not-applicable codes become SPSS user-missing values and Stata
extended missing values `.d`/`.r`/`.n`.

Everything the file formats cannot hold, or pyreadstat cannot write, goes into companion files: a `.sps` per
table (VARIABLE LEVEL, MRSETS, WEIGHT BY, DOCUMENT) and a `.do` per table (notes and characteristics with the
full question text, relevance and constraint; `svyset`). Names are made valid for each format by pure
functions (`stata_name`, `spss_name`, `assign_names` in `names`) and every change is written to
`<form_id>-rename-map.csv`. docs/export.md is the user documentation of these rules.

Time zones: ODK dateTime values carry the device's UTC offset. We export the device's local wall-clock time
(what the enumerator saw) as the datetime, and the offset in minutes in a companion variable `<name>_tz`; UTC
is recoverable as local time minus the offset. pyreadstat would otherwise move tz-aware values to UTC without
saying so.
"""

from toolkit.export.codes import FORMATS
from toolkit.export.names import (
    assign_names,
    spss_ghost_conflicts,
    spss_name,
    stata_name,
    transliterate,
    truncate_bytes,
    truncate_chars,
)
from toolkit.export.plan import MissingCodes, RecodeEntry, TablePlan, Variable, resolve_language
from toolkit.export.tables import Design
from toolkit.export.write import (
    ExportedFile,
    ExportResult,
    PreparedExport,
    RenameEntry,
    export_tables,
    prepare_export,
)

__all__ = [
    "FORMATS",
    "Design",
    "ExportResult",
    "ExportedFile",
    "MissingCodes",
    "PreparedExport",
    "RecodeEntry",
    "RenameEntry",
    "TablePlan",
    "Variable",
    "assign_names",
    "export_tables",
    "prepare_export",
    "resolve_language",
    "spss_ghost_conflicts",
    "spss_name",
    "stata_name",
    "transliterate",
    "truncate_bytes",
    "truncate_chars",
]
