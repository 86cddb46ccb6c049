"""Defaults and the limits of the file formats migkit writes.

Each limit is named after the format rule it enforces; the comments say where the rule comes from.
"""

from __future__ import annotations

from pathlib import Path

# --- Stata (.dta release 118, written with pyreadstat write_dta(version=14)) -----------------------------------
# Names: 1-32 characters, letter or underscore first (stata.com help varname). We keep to ASCII.
STATA_NAME_MAX_CHARS = 32
# pyreadstat names each value-label set <varname><running index>, and a label-set name may have at most 32
# characters; a 28-character name leaves room for a four-digit index.
STATA_LABELLED_NAME_MAX_CHARS = 28
# Variable and dataset labels: at most 80 characters (pyreadstat raises on 81).
STATA_VARIABLE_LABEL_MAX_CHARS = 80
STATA_DATASET_LABEL_MAX_CHARS = 80
# Value-label keys must be integers in the range Stata keeps (IBM "Saving data in Stata format").
STATA_VALUE_LABEL_KEY_MAX = 2_147_483_647
# Fixed-width strings go up to str2045; longer values become strL.
STATA_STR_MAX_BYTES = 2045
# Stata/BE opens at most 2,048 variables.
STATA_BE_MAX_VARIABLES = 2048
# Names that ReadStat refuses for Stata (case-sensitive, as Stata names are), plus str1..str2045.
STATA_RESERVED_NAMES = frozenset(
    [
        "_all",
        "_b",
        "byte",
        "_coef",
        "_cons",
        "double",
        "float",
        "if",
        "in",
        "int",
        "long",
        "_n",
        "_N",
        "_pi",
        "_pred",
        "_rc",
        "_skip",
        "strL",
        "using",
        "with",
    ]
) | frozenset(f"str{n}" for n in range(1, 2046))

# --- SPSS (.sav) ---------------------------------------------------------------------------------------------
# Names: at most 64 bytes in the file's encoding (UTF-8 here), unique without regard to case.
SPSS_NAME_MAX_BYTES = 64
# SPSS silently cuts variable labels at 256 bytes and value labels at 120 bytes; we cut first, at a UTF-8
# character boundary, end with an ellipsis and warn.
SPSS_VARIABLE_LABEL_MAX_BYTES = 256
SPSS_VALUE_LABEL_MAX_BYTES = 120
# String variables hold at most 32,767 bytes.
SPSS_STRING_MAX_BYTES = 32_767
# Strings over 255 bytes are stored as 252-byte segments with generated ("ghost") names (ReadStat#380).
SPSS_SHORT_STRING_MAX_BYTES = 255
# The file label in the .sav header is 64 bytes.
SPSS_FILE_LABEL_MAX_BYTES = 64
# Up to three discrete user-missing values, or one range plus one discrete value.
SPSS_MAX_DISCRETE_MISSING = 3
# Reserved words, refused in any case (SPSS 13 User Guide, "Variable Names").
SPSS_RESERVED_WORDS = frozenset(["ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"])

# --- Questionnaire conventions (specs/questionnaire.md section 4) ---------------------------------------------
CHOICE_OTHER = "96"
CHOICE_DONT_KNOW = "98"
CHOICE_REFUSED = "99"
NUMERIC_DONT_KNOW = -98
NUMERIC_REFUSED = -99
DEFAULT_LANGUAGE = "English (en)"
SURVEY_LANGUAGES = (
    "English (en)",
    "Russian (ru)",
    "Kazakh (kk)",
    "Kyrgyz (ky)",
    "Tajik (tg)",
    "Uzbek (uz)",
)
# A choice list whose names are not integers (countries as ISO alpha-3, section 4 item 7) carries its integer
# value-label code in this extra choices column (ISO 3166-1 / ISO 4217 numeric).
CHOICE_NUMERIC_CODE_COLUMN = "iso_num"

# --- Names the exports derive from a question's name (forms lint checks them, export writes them) -----------
# A select_multiple becomes one 0/1 dummy per choice: <name>_<choice name>.
SELECT_MULTIPLE_DUMMY_SEPARATOR = "_"
# A geopoint splits into four numeric columns (ODK Central's order; formpack says _precision for _accuracy).
GEOPOINT_EXPORT_SUFFIXES = ("_latitude", "_longitude", "_altitude", "_accuracy")
# Wide repeat output appends _<instance> per nesting level: 2 characters up to 9 instances, 3 up to 99
# (iefieldkit ietestform "TOO LONG FIELD NAMES WITH REPEAT SUFFIX (double digit)").
WIDE_REPEAT_SUFFIX_CHARS = 3

# --- Names the command line shows at start-up (kept here, not in the heavy stage modules, so `migkit --help`
# does not import pandas, lxml or cryptography) -------------------------------------------------------------
# Codebook formats `migkit codebook --format` writes (toolkit.codebook re-exports this).
CODEBOOK_FORMATS = ("html", "xlsx", "ddi")
# The environment variable holding the private-key passphrase (toolkit.crypto re-exports it).
PASSPHRASE_ENV = "MIGKIT_PASSPHRASE"  # noqa: S105 - the name of the variable, not a passphrase

# --- Where things are ----------------------------------------------------------------------------------------
PACKAGE_DIR = Path(__file__).resolve().parent
