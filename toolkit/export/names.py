"""Names and labels made valid for SPSS and Stata: pure functions, table-tested in tests/test_export.py."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from toolkit.settings import (
    SPSS_NAME_MAX_BYTES,
    SPSS_RESERVED_WORDS,
    SPSS_SHORT_STRING_MAX_BYTES,
    STATA_LABELLED_NAME_MAX_CHARS,
    STATA_NAME_MAX_CHARS,
    STATA_RESERVED_NAMES,
)

# --- names: pure functions ----------------------------------------------------------------------------------

# Cyrillic -> Latin for the six survey languages (Russian after BGN/PCGN without diacritics; the extra letters
# of Kazakh, Kyrgyz, Tajik and Uzbek Cyrillic). Only used for names: labels keep their script.
_TRANSLIT = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    "є": "ye",
    "і": "i",
    "ї": "yi",
    "ґ": "g",
    "ә": "a",
    "ғ": "gh",
    "қ": "q",
    "ң": "ng",
    "ө": "o",
    "ұ": "u",
    "ү": "u",
    "һ": "h",
    "ҳ": "h",
    "ӣ": "i",
    "ӯ": "u",
    "ҷ": "j",
    "ў": "o",
    "ҝ": "g",
    "ҹ": "ch",
}


def transliterate(text: str) -> str:
    """ASCII rendering of a name: Cyrillic transliterated, accents dropped, other characters kept as is.

    Parameters:
        text: any Unicode text.
    """
    out = []
    for char in text:
        lower = char.lower()
        if lower in _TRANSLIT:
            latin = _TRANSLIT[lower]
            out.append(latin.capitalize() if char != lower and latin else latin)
        else:
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or char)
    return "".join(out)


def identifier(name: str) -> str:
    """Letters, digits and underscores only, never empty, never starting with a digit or underscore."""
    ascii_name = re.sub(r"[^A-Za-z0-9_]", "_", transliterate(name))
    ascii_name = re.sub(r"__+", "_", ascii_name) if ascii_name != name else ascii_name
    if not ascii_name.strip("_"):
        return "v"
    if not ascii_name[0].isalpha():
        ascii_name = "v" + (ascii_name if ascii_name[0] == "_" else "_" + ascii_name)
    return ascii_name


def stata_name(name: str, *, labelled: bool = False) -> str:
    """The Stata name for `name` before collisions are resolved.

    ASCII `[A-Za-z][A-Za-z0-9_]*` (Cyrillic transliterated, other characters become `_`, a leading digit or
    `_` gets a `v` prefix), `_v` appended to a reserved name, cut to 32 characters, or 28 for a labelled
    variable (pyreadstat names the value-label set `<name><index>` and label-set names are limited to 32
    characters).

    Parameters:
        name: the export name (XLSForm name or derived name such as `fav_3`).
        labelled: whether the variable carries value labels.
    """
    limit = STATA_LABELLED_NAME_MAX_CHARS if labelled else STATA_NAME_MAX_CHARS
    candidate = identifier(name)
    if candidate in STATA_RESERVED_NAMES:
        candidate += "_v"
    return candidate[:limit]


def spss_name(name: str) -> str:
    """The SPSS name for `name` before collisions are resolved.

    Same ASCII rule as Stata (so both files usually share names), no trailing `_` (SPSS advises against it),
    `_v` appended to a reserved word in any case (ReadStat only refuses the upper-case forms, and PSPP then
    renames `by`, `with`, ... to VAR001 and loses their labels), cut to 64 bytes.

    Parameters:
        name: the export name.
    """
    candidate = identifier(name)
    if candidate.rstrip("_"):
        candidate = candidate.rstrip("_")
    if candidate.upper() in SPSS_RESERVED_WORDS:
        candidate += "_v"
    return candidate[:SPSS_NAME_MAX_BYTES]


def assign_names(
    names: Sequence[str],
    candidates: Sequence[str],
    limits: Sequence[int],
    *,
    reserved: Callable[[str], bool] = lambda _name: False,
) -> list[str]:
    """Make candidate names unique without regard to case, deterministically.

    A candidate equal to its original name keeps it (the first such one in column order wins); every other
    name, in column order, gets the first free `<stem>_2`, `<stem>_3`, ... with the stem cut so that the name
    fits its limit.

    Parameters:
        names: the original names, in column order.
        candidates: the format-valid candidates for them (`stata_name` / `spss_name`).
        limits: the length limit of each name.
        reserved: names that a suffixed name must not equal.
    """
    taken: set[str] = set()
    result: list[str | None] = [None] * len(names)
    for index, (name, candidate) in enumerate(zip(names, candidates, strict=True)):
        if name == candidate and candidate.lower() not in taken:
            taken.add(candidate.lower())
            result[index] = candidate
    for index, candidate in enumerate(candidates):
        if result[index] is not None:
            continue
        chosen = candidate
        counter = 1
        while chosen.lower() in taken or reserved(chosen):
            counter += 1
            suffix = f"_{counter}"
            chosen = candidate[: limits[index] - len(suffix)] + suffix
        taken.add(chosen.lower())
        result[index] = chosen
    return [name for name in result if name is not None]


def spss_ghost_conflicts(names: Sequence[str], widths: Sequence[int]) -> list[int]:
    """Positions of string variables whose very-long-string segment names would clash in the .sav.

    ReadStat stores a string over 255 bytes as 252-byte segments named `<stem><k>`, where the stem is the
    first five characters of the upper-cased 8-byte short name and `k` a base-36 digit
    (WizardMac/ReadStat#380). A segment named like a reserved word (`t` gives `TO`) or like another variable's
    short name makes PSPP rename variables.

    Parameters:
        names: SPSS names in column order.
        widths: byte width of each variable (0 for numeric).
    """
    shorts: list[str] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        short = name.encode("utf-8")[:8].decode("utf-8", "ignore").upper()
        if short in seen:
            short = f"V{(index + 1) % 100000}_A"
        seen.add(short)
        shorts.append(short)
    conflicts = []
    for index, width in enumerate(widths):
        if width <= SPSS_SHORT_STRING_MAX_BYTES:
            continue
        stem = shorts[index][:5]
        segments = (width + 251) // 252
        ghosts = {stem + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k % 36] for k in range(1, segments)}
        if ghosts & (SPSS_RESERVED_WORDS | seen):
            conflicts.append(index)
    return conflicts


# --- labels: pure functions ---------------------------------------------------------------------------------

ELLIPSIS = "…"


def truncate_bytes(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` UTF-8 bytes at a character boundary, ending with an ellipsis if cut.

    Parameters:
        text: the label.
        max_bytes: the format limit in bytes.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", "ignore").rstrip() + ELLIPSIS, True


def truncate_chars(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_chars` characters, ending with an ellipsis if cut.

    Parameters:
        text: the label.
        max_chars: the format limit in characters.
    """
    if len(text) <= max_chars:
        return text, False
    return text[: max_chars - 1].rstrip() + ELLIPSIS, True


def one_line(text: str) -> str:
    """The text with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` UTF-8 bytes (SPSS documents are stored as 80-byte lines)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if len(trial.encode("utf-8")) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        rest = word
        while len(rest.encode("utf-8")) > width:
            head = truncate_bytes(rest, width)[0].removesuffix(ELLIPSIS)
            lines.append(head)
            rest = rest[len(head) :]
        current = rest
    if current:
        lines.append(current)
    return lines or [""]
