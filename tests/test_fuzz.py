"""Fuzzing every parser of untrusted input (bench/fuzz/targets.py) with hypothesis, a few seconds each.

Inputs are random bytes and mutations of a well-formed seed (bytes flipped, cut, repeated, inserted; markup and
separators spliced in). A target may return a result with Issues or raise `ToolkitError`; anything else fails.
Long runs of the same targets: `bench/fuzz/run.py` (atheris).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.targets import TARGETS, seeds

# Tokens that reach parser corners: markup, entities, separators, encodings, numbers at their limits.
TOKENS = [
    b"<",
    b">",
    b"</",
    b"/>",
    b"<!DOCTYPE x>",
    b'<!ENTITY a "b">',
    b"&a;",
    b"&#0;",
    b"<![CDATA[",
    b"]]>",
    b'"',
    b",",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"=",
    b"[",
    b"]",
    b"[[x]]",
    b"{",
    b"'''",
    b"1e309",
    b"-0",
    b"nan",
    b"9" * 30,
    b"uuid:",
    b"../",
    b"/",
    b"${age}",
    b"PK\x03\x04",
]


@st.composite
def mutated(draw: st.DrawFn, seed_list: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seed_list)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "flip", "insert", "token", "repeat", "delete"]))
        if action == "cut":
            del data[at:]
        elif action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=8))
        elif action == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif action == "repeat":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:at] = data[at:end] * draw(st.integers(1, 4))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    prefix = seeds(name)[0][:1] if name in {"xlsform", "central_zip"} else b""
    return mutated(seeds(name)) | st.binary(max_size=300).map(lambda b: prefix + b)


# Budget per target: `make test` runs these on 2 shared cores. The XLSForm target compiles with pyxform.
EXAMPLES = {"xlsform": 25, "manifest": 40, "submission_xml": 60, "central_zip": 60}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_raises_only_documented_errors(name: str) -> None:
    target = TARGETS[name]
    target(seeds(name)[0])  # the first call compiles the form and makes the key: outside the deadline

    @given(data=_inputs(name))
    @settings(
        max_examples=EXAMPLES.get(name, 80),
        deadline=10_000,  # a hang or a blow-up fails; the shared 2-core machine's jitter does not
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def run(data: bytes) -> None:
        target(data)

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_read(name: str) -> None:
    # The seeds themselves are read (a result, not a refusal): mutations then reach past the first check.
    for seed in seeds(name):
        assert TARGETS[name](seed) is not None, seed[:60]


def _damaged_zip(how: str) -> bytes:
    whole = bytearray(next(s for s in seeds("central_zip") if s[:1] == b"Z")[1:])
    if how == "crc":
        whole[whole.index(b"PK\x01\x02") + 16] ^= 0xFF  # the first entry's CRC-32 in the central directory
    elif how == "deflate":
        whole[40] ^= 0xFF  # inside the compressed data
    elif how == "header":
        whole[0] = 0  # the first local header's signature
    elif how == "offset":
        at = whole.rindex(b"PK\x01\x02")
        whole[at + 42 : at + 46] = (2**31).to_bytes(4, "little")  # a local header offset past the end
    return b"Z" + bytes(whole)


# Crashes the fuzzing found (each raised something other than ToolkitError before it was fixed).
FOUND = [
    ("central_zip", b"C"),  # an empty main CSV: pandas EmptyDataError
    ("central_zip", _damaged_zip("crc")),  # zipfile.BadZipFile while reading an entry
    ("central_zip", _damaged_zip("deflate")),  # zlib.error
    ("central_zip", _damaged_zip("header")),  # BadZipFile opening the entry
    ("central_zip", _damaged_zip("offset")),  # OSError (negative seek) or BadZipFile
    ("xlsform", b"Rsurvey|type|name|label\nsurvey|select_one yn|ok|OK?\nchoices|list_name|name|,abel\n"
     b"choices|yn|1|Yes\n"),  # pyxform writes the header ",abel" as an element name: lxml XMLSyntaxError
]


@pytest.mark.parametrize(("name", "data"), FOUND, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FOUND)])
def test_crashes_found_by_fuzzing_stay_fixed(name: str, data: bytes) -> None:
    TARGETS[name](data)
