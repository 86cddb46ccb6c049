"""`migkit decrypt`: every status, peer variants, re-runs, process pool, CLI exit codes and the security rules, each
with a crafted input made by `encrypt_submission` (Collect's layout) or by small peer builders below."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.test_crypto import central_record
from toolkit import crypto
from toolkit.cli import app
from toolkit.cli import crypto as cli_crypto
from toolkit.crypto import manifest as crypto_manifest
from toolkit.crypto import scheme, stamps, submission
from toolkit.errors import ToolkitError

runner = CliRunner()
SECRET_ANSWER = "Айгүл-SECRET-ANSWER-42"


@pytest.fixture(scope="session")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory, key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path_factory.mktemp("keys") / "private.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def instance(instance_id: str, answer: str = SECRET_ANSWER, photo: str | None = None) -> bytes:
    photo_xml = f"<photo>{photo}</photo>" if photo else ""
    return (
        f'<?xml version=\'1.0\' ?><data id="hh" version="7"><name>{answer}</name>{photo_xml}'
        f"<meta><instanceID>{instance_id}</instanceID></meta></data>"
    ).encode()


def collect(
    folder: Path,
    key: rsa.RSAPrivateKey,
    instance_id: str = "uuid:aaaa-1",
    *,
    media: Sequence[tuple[str, bytes]] = (("1.jpg", b"\xff\xd8jpeg" * 50), ("audit.csv", b"event\n")),
    tablet: bool = True,
    answer: str = SECRET_ANSWER,
    version: str | None = "7",
) -> crypto.EncryptedSubmission:
    """A finalised Collect instance folder: manifest renamed to <instance>.xml (tablet) or submission.xml."""
    return crypto.encrypt_submission(
        instance(instance_id, answer, media[0][0] if media else None),
        public_key=key.public_key(),
        form_id="hh",
        version=version,
        instance_id=instance_id,
        out_dir=folder,
        media=media,
        manifest_name=f"{folder.name}.xml" if tablet else "submission.xml",
    )


def protected_key(path: Path, key: rsa.RSAPrivateKey, passphrase: bytes) -> Path:
    """The key as a passphrase-protected PKCS#8 PEM."""
    encryption = serialization.BestAvailableEncryption(passphrase)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows(out: Path) -> list[dict[str, str]]:
    return list(crypto.iter_log(out / crypto.LOG_NAME))


# --- round trips
# --------------------------------------------------------------------------------------------------
NAME = st.text(alphabet=st.sampled_from("abcXYZ019_-() éжأ中"), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and ".." not in s
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    answer=st.text(min_size=0, max_size=200).map(lambda s: re.sub(r"[^\w ]", "", s)),
    media=st.lists(
        st.tuples(NAME.map(lambda s: s + ".jpg"), st.binary(max_size=3000)),
        max_size=5,
        unique_by=lambda m: m[0],
    ),
    tablet=st.booleans(),
    version=st.sampled_from([None, "1", "2026112701", "v-ж"]),
)
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    key: rsa.RSAPrivateKey,
    answer: str,
    media: list[tuple[str, bytes]],
    tablet: bool,
    version: str | None,
) -> None:
    base = tmp_path_factory.mktemp("rt")
    enc = collect(
        base / "hh_2026-11-27_10-00-00",
        key,
        "uuid:rt-1",
        media=media,
        tablet=tablet,
        answer=answer,
        version=version,
    )
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=base / "out")
    assert result.status == "ok", result.message
    out = base / "out" / "rt-1"
    assert (out / "submission.xml").read_bytes() == instance(
        "uuid:rt-1", answer, media[0][0] if media else None
    )
    for name, content in media:
        assert (out / name).read_bytes() == content
    assert sorted(p.name for p in out.iterdir() if p.name != crypto.STAMP_NAME) == sorted(
        ["submission.xml", *(n for n, _ in media)]
    )


def test_collect_manifest_layout(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "hh_1", key, "uuid:lay-1")
    text = enc.manifest.read_text(encoding="utf-8")
    assert not text.startswith("<?xml")  # KXmlSerializer writes no declaration
    assert text.startswith(
        '<data xmlns="http://www.opendatakit.org/xforms/encrypted" id="hh" version="7" '
        'encrypted="yes"><base64EncryptedKey>'
    )
    assert (
        '<orx:meta xmlns:orx="http://openrosa.org/xforms"><orx:instanceID>uuid:lay-1</orx:instanceID></orx:meta>'
        in text
    )
    assert re.findall(r"<media><file>([^<]+)</file></media>", text) == ["1.jpg.enc", "audit.csv.enc"]
    assert text.endswith("</base64EncryptedElementSignature></data>")
    assert [p.name for p in enc.files] == ["1.jpg.enc", "audit.csv.enc", "submission.xml.enc"]
    wrapped = base64.b64decode(re.search(r"<base64EncryptedKey>([^<]+)<", text).group(1))
    assert len(wrapped) == 256
    # Ciphertexts are 1-16 bytes longer than their plaintexts (PKCS#7 over CFB).
    assert (tmp_path / "hh_1" / "audit.csv.enc").stat().st_size == 16


# --- statuses
# -----------------------------------------------------------------------------------------------------
def test_ok_tablet_layout_and_plaintext_mixed(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    instances = tmp_path / "sdcard" / "odk" / "instances"
    collect(instances / "hh_2026-11-27_10-00-00", key, "uuid:tab-1")
    draft = instances / "hh_2026-11-27_11-00-00"
    draft.mkdir()
    (draft / "hh_2026-11-27_11-00-00.xml").write_bytes(instance("uuid:draft-1", photo="p.jpg"))
    (draft / "p.jpg").write_bytes(b"plain photo")
    forms = tmp_path / "sdcard" / "odk" / "forms"
    forms.mkdir(parents=True)
    (forms / "hh.xml").write_text('<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head/></h:html>')
    before = tree_digest(tmp_path / "sdcard")
    result = crypto.decrypt([tmp_path / "sdcard"], key=key, out_dir=tmp_path / "out")
    # The progress total counts every XML file, the form definition too: an upper bound, never short.
    assert crypto.count_submissions([tmp_path / "sdcard"], tmp_path / "out") == 3
    assert {r.instance_id: r.status for r in result.submissions} == {
        "uuid:tab-1": "ok",
        "uuid:draft-1": "plaintext",
    }
    assert (tmp_path / "out" / "draft-1" / "p.jpg").read_bytes() == b"plain photo"
    assert (tmp_path / "out" / "tab-1" / "audit.csv").read_bytes() == b"event\n"
    assert tree_digest(tmp_path / "sdcard") == before  # inputs never change
    assert result.ok


@pytest.mark.parametrize("workers", [1, 2])
def test_decrypted_answers_are_private_whatever_the_umask(tmp_path: Path, key: rsa.RSAPrivateKey, workers: int) -> None:
    """Decrypted files hold the answers: owner-only (0600 files, 0700 folders, the log 0600) under umask 000, for
    decrypted and copied-through plaintext submissions, on both the in-process and the pool path."""
    collect(tmp_path / "in" / "hh_1", key, "uuid:priv-1")
    draft = tmp_path / "in" / "hh_2"
    draft.mkdir()
    (draft / "hh_2.xml").write_bytes(instance("uuid:priv-2", photo="p.jpg"))
    (draft / "p.jpg").write_bytes(b"plain photo")
    previous = os.umask(0o000)
    try:
        result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out", workers=workers)
    finally:
        os.umask(previous)
    assert {r.status for r in result.submissions} == {"ok", "plaintext"}
    modes = {
        p.relative_to(tmp_path / "out").as_posix(): oct(p.stat().st_mode & 0o777)
        for p in (tmp_path / "out").rglob("*")
    }
    assert modes == {
        crypto.LOG_NAME: "0o600",
        "priv-1": "0o700",
        "priv-1/submission.xml": "0o600",
        "priv-1/1.jpg": "0o600",
        "priv-1/audit.csv": "0o600",
        "priv-2": "0o700",
        "priv-2/submission.xml": "0o600",
        "priv-2/p.jpg": "0o600",
    }
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == "0o700"


def test_a_media_file_that_is_a_link_is_not_followed(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    made = collect(tmp_path / "in" / "hh_1", key, "uuid:link-1")
    outside = tmp_path / "elsewhere.enc"
    photo = made.manifest.parent / "1.jpg.enc"
    photo.rename(outside)
    photo.symlink_to(outside)
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    (row,) = result.submissions
    assert row.status == "incomplete" and "1.jpg" in row.message
    assert not (tmp_path / "out" / "link-1" / "1.jpg").exists()


def test_signature_invalid_is_exported_with_reason(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    one = collect(tmp_path / "in" / "a", key, "uuid:sig-1")
    two = collect(tmp_path / "other" / "b", key, "uuid:sig-2")
    signature = re.compile(r"<base64EncryptedElementSignature>[^<]+</base64EncryptedElementSignature>")
    foreign = signature.search(two.manifest.read_text()).group(0)
    one.manifest.write_text(signature.sub(foreign, one.manifest.read_text()))
    result = crypto.decrypt_submission(one.manifest, key=key, out_dir=tmp_path / "out")
    assert result.status == "signature_invalid" and result.reason_code == crypto.SIGNATURE_MISMATCH
    assert "exported anyway" in result.message and "Briefcase" in result.message
    assert (tmp_path / "out" / "sig-1" / "submission.xml").exists()


def test_incomplete_keeps_iv_positions(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    media = [("a.jpg", b"A" * 100), ("b.jpg", b"B" * 100), ("c.jpg", b"C" * 100)]
    enc = collect(tmp_path / "in" / "x", key, "uuid:inc-1", media=media)
    (tmp_path / "in" / "x" / "b.jpg.enc").unlink()
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert result.status == "incomplete" and result.reason_code == crypto.MEDIA_MISSING
    out = tmp_path / "out" / "inc-1"
    assert (out / "a.jpg").read_bytes() == b"A" * 100 and (out / "c.jpg").read_bytes() == b"C" * 100
    assert not (out / "b.jpg").exists() and (out / "submission.xml").exists()
    assert "b.jpg.enc is missing" in result.message


def test_incomplete_when_media_truncated(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:trunc-1")
    photo = tmp_path / "in" / "x" / "1.jpg.enc"
    photo.write_bytes(photo.read_bytes()[:-5])
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert result.status == "incomplete" and result.reason_code == crypto.MEDIA_CORRUPT
    assert "cut short" in result.message


def test_duplicate_and_conflict(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    collect(tmp_path / "in" / "1" / "first", key, "uuid:dup-1")
    shutil.copytree(tmp_path / "in" / "1" / "first", tmp_path / "in" / "2" / "first")  # pulled twice
    collect(
        tmp_path / "in" / "3" / "again", key, "uuid:dup-1", answer="edited answer"
    )  # same id, new content
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in result.submissions] == ["ok", "duplicate", "conflict"]
    assert (tmp_path / "out" / "dup-1").is_dir() and (tmp_path / "out" / "dup-1__2").is_dir()
    assert b"edited answer" in (tmp_path / "out" / "dup-1__2" / "submission.xml").read_bytes()
    assert not result.ok
    # Re-encrypting the same content (another AES key) is still a duplicate, not a conflict.
    collect(tmp_path / "in2" / "re", key, "uuid:dup-1")
    again = crypto.decrypt([tmp_path / "in2"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in again.submissions] == ["duplicate"]


@pytest.mark.parametrize(
    "damage", ["wrong_key", "truncated_xml", "corrupt_xml", "missing_xml", "corrupt_key_block"]
)
def test_failed_leaves_nothing(
    tmp_path: Path, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, damage: str
) -> None:
    enc = collect(tmp_path / "in" / "x", other_key if damage == "wrong_key" else key, "uuid:fail-1")
    xml_enc = tmp_path / "in" / "x" / "submission.xml.enc"
    if damage == "truncated_xml":
        xml_enc.write_bytes(xml_enc.read_bytes()[:-16])
    elif damage == "corrupt_xml":
        data = bytearray(xml_enc.read_bytes())
        data[-1] ^= 0x55
        xml_enc.write_bytes(bytes(data))
    elif damage == "missing_xml":
        xml_enc.unlink()
    elif damage == "corrupt_key_block":
        text = enc.manifest.read_text()
        wrapped = re.search(r"<base64EncryptedKey>([^<]+)<", text).group(1)
        raw = bytearray(base64.b64decode(wrapped))
        raw[100] ^= 1
        enc.manifest.write_text(text.replace(wrapped, base64.b64encode(bytes(raw)).decode()))
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out").submissions[0]
    expected = {
        "wrong_key": crypto.WRONG_KEY,
        "truncated_xml": crypto.XML_CORRUPT,
        "corrupt_xml": crypto.XML_CORRUPT,
        "missing_xml": crypto.XML_MISSING,
        "corrupt_key_block": crypto.KEY_BLOCK_CORRUPT,
    }[damage]
    assert (result.status, result.reason_code) == ("failed", expected), result.message
    if damage == "wrong_key":
        assert "this submission was encrypted for a different public key" in result.message
    else:
        assert "different public key" not in result.message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [crypto.LOG_NAME]


# --- peers and variants
# -------------------------------------------------------------------------------------------
def _peer(
    folder: Path,
    key: rsa.RSAPrivateKey,
    *,
    instance_id: str,
    xml: bytes,
    media: Sequence[tuple[str, bytes]],
    form_id: str = "hh",
    version: str | None = "7",
    sig_version: str | None = "same",
    mgf: hashes.HashAlgorithm | None = None,
    signed_names_with_enc: bool = False,
    iv_id: str | None = None,
    meta_id: str | None = None,
    root_id: str | None = None,
    compact_media: bool = False,
    ns: str = crypto.COLLECT_NS,
    names_on_disk: dict[str, str] | None = None,
    signature: str | None = None,
) -> Path:
    """A submission made by an encryptor that departs from Collect in the ways given (written independently of
    `encrypt_submission`, with `cryptography` directly)."""
    folder.mkdir(parents=True, exist_ok=True)
    aes = bytes(range(32))
    oaep = padding.OAEP(mgf=padding.MGF1(mgf or hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = base64.b64encode(key.public_key().encrypt(aes, oaep)).decode()
    seed = hashlib.md5((iv_id or instance_id).encode() + aes).digest()
    lines = (
        [form_id]
        + (
            []
            if (sig_version if sig_version != "same" else version) is None
            else [sig_version if sig_version != "same" else version]
        )
        + [wrapped, instance_id]
    )
    files = [*media, ("submission.xml", xml)]
    names = []
    for index, (name, content) in enumerate(files):
        iv = crypto.collect_iv(seed, index)
        pad = 16 - len(content) % 16
        enc = Cipher(algorithms.AES(aes), scheme._CFB(iv)).encryptor()
        listed = name + ".enc"
        disk = (names_on_disk or {}).get(listed, listed)
        (folder / disk).write_bytes(enc.update(content + bytes([pad]) * pad) + enc.finalize())
        names.append(listed)
        signed = listed if (signed_names_with_enc and name != "submission.xml") else name
        lines.append(f"{signed}::{hashlib.md5(content).hexdigest()}")
    digest = hashlib.md5("".join(x + "\n" for x in lines).encode()).digest()
    sig = signature or base64.b64encode(key.public_key().encrypt(digest, oaep)).decode()
    media_xml = (
        ("<media>" + "".join(f"<file>{n}</file>" for n in names[:-1]) + "</media>")
        if compact_media
        else "".join(f"<media><file>{n}</file></media>" for n in names[:-1])
    )
    version_attr = f' version="{version}"' if version is not None else ""
    root_attr = f' instanceID="{root_id}"' if root_id else ""
    meta = (
        f"<meta><instanceID>{meta_id if meta_id is not None else instance_id}</instanceID></meta>"
        if meta_id != ""
        else ""
    )
    (folder / "submission.xml").write_text(
        f'<data xmlns="{ns}" id="{form_id}"{version_attr} encrypted="yes"{root_attr}>'
        f"<base64EncryptedKey>{wrapped}</base64EncryptedKey>{meta}{media_xml}"
        f"<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>"
        f"<base64EncryptedElementSignature>{sig}</base64EncryptedElementSignature></data>",
        encoding="utf-8",
    )
    return folder / "submission.xml"


PEER_CASES = {
    # name: (builder options, expected status, expected reason code)
    "compact_media": ({"compact_media": True}, "ok", ""),
    "spec_namespace": ({"ns": "http://opendatakit.org/submissions"}, "ok", ""),
    "server_renamed": ({"names_on_disk": {"submission.xml.enc": "submission.xml_ED6i4G8.enc"}}, "ok", ""),
    "sunjce_mgf1_sha1": ({"mgf": hashes.SHA1()}, "ok", crypto.MGF1_SHA1),
    "empty_version_absent": (
        {"version": "", "sig_version": None},
        "ok",
        "decrypt.recovered.empty_version_absent",
    ),
    "empty_version_line": ({"version": ""}, "ok", ""),
    "names_with_enc": ({"signed_names_with_enc": True}, "ok", "decrypt.recovered.names_with_enc"),
    "root_instance_id": (
        {
            "iv_id": "uuid:root-7",
            "root_id": "uuid:root-7",
            "instance_id": "uuid:root-7",
            "meta_id": "uuid:meta-7",
        },
        "ok",
        "decrypt.recovered.root_instance_id",
    ),
    "root_attribute_only": ({"root_id": "uuid:peer-1", "meta_id": ""}, "ok", ""),
    "unknown_variant": ({"sig_version": "8"}, "signature_invalid", crypto.SIGNATURE_MISMATCH),
}


@pytest.mark.parametrize("case", PEER_CASES)
def test_peer_variants(tmp_path: Path, key: rsa.RSAPrivateKey, case: str) -> None:
    options, status, reason = PEER_CASES[case]
    options = dict(options)
    instance_id = options.pop("instance_id", "uuid:peer-1")
    xml = instance(instance_id, "Бақыт 😀")
    manifest = _peer(
        tmp_path / "in", key, instance_id=instance_id, xml=xml, media=[("p.jpg", b"jpeg" * 40)], **options
    )
    result = crypto.decrypt_submission(manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == (status, reason), result.message
    assert (tmp_path / "out" / result.folder / "submission.xml").read_bytes() == xml
    assert (tmp_path / "out" / result.folder / "p.jpg").read_bytes() == b"jpeg" * 40


def test_central_simulator_envelope(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """central-backend test/util/crypto-odk.js: invalid XML (`encrypted="yes", version=`), media without .enc,
    instanceID [a-z]+, signature the literal "no". Tested as emitted and as a corrected copy."""
    manifest = _peer(
        tmp_path / "in",
        key,
        instance_id="simulated",
        xml=instance("simulated"),
        media=[("photo.jpg", b"x" * 33)],
        signature="no",
        names_on_disk={"photo.jpg.enc": "photo.jpg"},
        ns="http://opendatakit.org/submissions",
    )
    text = manifest.read_text().replace("photo.jpg.enc", "photo.jpg")
    emitted = text.replace('id="hh" version="7" encrypted="yes"', 'id="hh" encrypted="yes", version="7"')
    manifest.write_text('<?xml version="1.0"?>\n' + emitted)
    result = crypto.decrypt_submission(manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == ("signature_invalid", crypto.SIGNATURE_UNVERIFIABLE)
    assert "'no'" in result.message and "repaired" in result.message and result.version == "7"
    assert (tmp_path / "out" / "simulated" / "photo.jpg").read_bytes() == b"x" * 33
    manifest.write_text(text)
    fixed = crypto.decrypt_submission(manifest, key=key, out_dir=tmp_path / "out2")
    assert fixed.status == "signature_invalid" and "repaired" not in fixed.message


# --- security
# -----------------------------------------------------------------------------------------------------
BAD_NAMES = [
    "../evil.jpg.enc",
    "..\\evil.jpg.enc",
    "/etc/passwd",
    "sub/dir.jpg.enc",
    "C:evil.enc",
    "..",
    "a&#9;b.enc",
    "x" * 300 + ".enc",
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_unsafe_media_names_are_refused(tmp_path: Path, key: rsa.RSAPrivateKey, bad: str) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:sec-1")
    text = enc.manifest.read_text().replace("<file>1.jpg.enc</file>", f"<file>{bad}</file>")
    enc.manifest.write_text(text)
    (tmp_path / "in" / "evil.jpg.enc").write_bytes((tmp_path / "in" / "x" / "1.jpg.enc").read_bytes())
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out" / "o")
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE), result.message
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["o"]


@pytest.mark.parametrize(
    "second", ["1.jpg.enc", "1.jpg", "submission.xml.enc"], ids=["listed twice", "with and without .enc", "xml name"]
)
def test_media_entries_that_would_overwrite_each_other_are_refused(
    tmp_path: Path, key: rsa.RSAPrivateKey, second: str
) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:dup-media")
    text = enc.manifest.read_text()
    first_media = "<media><file>1.jpg.enc</file></media>"
    assert first_media in text
    if second == "submission.xml.enc":
        text = text.replace(first_media, f"<media><file>{second}</file></media>")
    else:
        text = text.replace(first_media, first_media + f"<media><file>{second}</file></media>")
    enc.manifest.write_text(text)
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE), result.message
    assert "is taken" in result.message
    assert not (tmp_path / "out" / "dup-media").exists()


@pytest.mark.parametrize(
    "payload",
    [
        '<!DOCTYPE data [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE data [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE data SYSTEM "http://example.org/x.dtd">',
    ],
)
def test_doctype_and_entities_are_refused(tmp_path: Path, key: rsa.RSAPrivateKey, payload: str) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:dtd-1")
    enc.manifest.write_text(payload + enc.manifest.read_text())
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out").submissions[0]
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE)
    assert "DOCTYPE" in result.message


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("base64EncryptedKey", "A" * 5000),
        ("orx:instanceID", "uuid:" + "a" * 600),
    ],
)
def test_oversized_or_unsafe_elements(
    tmp_path: Path, key: rsa.RSAPrivateKey, element: str, value: str
) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:big-1")
    text = re.sub(
        f"<{element}>[^<]*</{element}>", f"<{element}>{value}</{element}>", enc.manifest.read_text()
    )
    enc.manifest.write_text(text)
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE)
    assert not (tmp_path / "escape").exists()


def test_huge_manifest_refused(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:huge-1")
    text = enc.manifest.read_text()
    enc.manifest.write_text(text.replace("</data>", "<pad>" + "x" * (2 << 20) + "</pad></data>"))
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE)


def test_zip_input_and_escaping_members(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "src" / "hh_1", key, "uuid:zip-1")
    archive = tmp_path / "pull.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (*enc.files, enc.manifest):
            zf.write(path, f"instances/hh_1/{path.name}")
        zf.writestr("../escaped.xml", "<data id='x'/>")
        zf.writestr("/tmp/absolute-migkit-test.xml", "<data id='x'/>")
        zf.writestr("a/../../escaped2.xml", "<data id='x'/>")
        zf.writestr("..\\windows-escape.xml", "<data id='x'/>")
        zf.writestr("C:/drive.xml", "<data id='x'/>")
        link = zipfile.ZipInfo("instances/link.xml")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    result = crypto.decrypt([archive], key=key, out_dir=tmp_path / "out")
    assert crypto.count_submissions([archive], tmp_path / "out") == len(result.submissions) == 7  # the total shown
    statuses = [(r.status, r.reason_code) for r in result.submissions]
    assert statuses.count(("failed", crypto.ZIP_UNSAFE)) == 6
    assert ("ok", "") in statuses
    ok = next(r for r in result.submissions if r.status == "ok")
    assert ok.source == f"{archive}!instances/hh_1/hh_1.xml"
    assert not (tmp_path / "escaped.xml").exists() and not Path("/tmp/absolute-migkit-test.xml").exists()
    assert not (tmp_path / "escaped2.xml").exists()


def test_no_key_material_or_answers_in_log_or_output(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path
) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:leak-1")
    (tmp_path / "pass").write_text("unused-passphrase")
    result = runner.invoke(
        app,
        ["decrypt", str(tmp_path / "in"), "--key", str(key_file), "--out", str(tmp_path / "out"), "--json"],
    )
    assert result.exit_code == 0, result.output
    body = "".join(key_file.read_text().splitlines()[1:-1])[:40]
    log = (tmp_path / "out" / crypto.LOG_NAME).read_text(encoding="utf-8")
    for text in (
        result.output,
        log,
        json.dumps(stamps.read_stamp(tmp_path / "out" / "leak-1"), ensure_ascii=False),
    ):
        assert SECRET_ANSWER not in text and body not in text
    payload = json.loads(result.stdout)
    assert (payload["command"], payload["ok"], payload["issues"]) == ("decrypt", True, [])
    assert payload["submissions"] == rows(tmp_path / "out")


# --- re-runs, workers, CLI
# ----------------------------------------------------------------------------------------
def test_rerun_is_idempotent_and_repairs(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:re-1")
    enc_b = collect(
        tmp_path / "in" / "b", key, "uuid:re-2", media=[("x.jpg", b"1" * 64), ("y.jpg", b"2" * 64)]
    )
    (tmp_path / "in" / "b" / "y.jpg.enc").rename(tmp_path / "later.enc")
    first = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in first.submissions] == ["ok", "incomplete"]
    out_before = tree_digest(tmp_path / "out" / "re-1")
    mtime = (tmp_path / "out" / "re-1" / "submission.xml").stat().st_mtime_ns
    second = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.status, r.reason_code) for r in second.submissions] == [
        ("ok", crypto.ALREADY_DONE),
        ("incomplete", crypto.MEDIA_MISSING),
    ]
    assert tree_digest(tmp_path / "out" / "re-1") == out_before
    assert (tmp_path / "out" / "re-1" / "submission.xml").stat().st_mtime_ns == mtime
    # The missing file arrives; a damaged output is restored.
    (tmp_path / "later.enc").rename(tmp_path / "in" / "b" / "y.jpg.enc")
    (tmp_path / "out" / "re-1" / "1.jpg").write_bytes(b"damaged")
    third = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in third.submissions] == ["ok", "ok"]
    assert tree_digest(tmp_path / "out" / "re-1") == out_before
    assert (tmp_path / "out" / "re-2" / "y.jpg").read_bytes() == b"2" * 64
    assert enc_b.manifest.exists() and not list((tmp_path / "out").glob("re-*__*"))
    assert not (tmp_path / "out" / crypto.PARTIAL_DIR).exists()


def test_outputs_recorded_by_an_earlier_build_with_md5_fingerprints_are_still_skipped(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    """Earlier builds recorded each input as "size:md5"; their outputs must still count as done (and a changed
    input must still be seen), or upgrading migkit would decrypt every earlier run again."""
    made = collect(tmp_path / "in" / "a", key, "uuid:old-1")
    crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    folder = tmp_path / "out" / "old-1"
    record = stamps.read_stamp(folder)
    record["inputs"] = stamps.output_fingerprint([made.manifest.parent / n for n in record["inputs"]], algorithm="md5")
    assert all(len(v.partition(":")[2]) == 32 for v in record["inputs"].values())
    stamps.write_stamp(folder, record)
    again = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [r.reason_code for r in again.submissions] == [crypto.ALREADY_DONE]
    photo = made.manifest.parent / "1.jpg.enc"
    data = bytearray(photo.read_bytes())
    data[-20] ^= 1  # same size, other content
    photo.write_bytes(bytes(data))
    changed = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [r.reason_code for r in changed.submissions] != [crypto.ALREADY_DONE]


def test_workers_give_the_same_rows_in_order(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    for i in range(40):
        collect(tmp_path / "in" / f"hh_{i:03d}", key, f"uuid:w-{i:03d}", media=[("p.jpg", bytes([i]) * 500)])
    (tmp_path / "in" / "hh_007" / "p.jpg.enc").unlink()
    serial = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "o1")
    parallel = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "o2", workers=2)
    strip = [(r.instance_id, r.status, r.reason_code) for r in serial.submissions]
    assert strip == [(r.instance_id, r.status, r.reason_code) for r in parallel.submissions]
    assert parallel.counts["ok"] == 39 and parallel.counts["incomplete"] == 1
    assert tree_digest(tmp_path / "o2" / "w-012") == tree_digest(tmp_path / "o1" / "w-012")


@pytest.mark.parametrize(
    ("setup", "exit_code"),
    [
        ("ok", 0),
        ("plaintext_and_duplicate", 0),
        ("incomplete", 1),
        ("conflict", 1),
        ("signature_invalid", 1),
        ("failed", 1),
    ],
)
def test_cli_exit_codes(
    tmp_path: Path,
    key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    key_file: Path,
    setup: str,
    exit_code: int,
) -> None:
    src = tmp_path / "in"
    enc = collect(src / "a", key, "uuid:cli-1")
    if setup == "plaintext_and_duplicate":
        (src / "draft").mkdir()
        (src / "draft" / "draft.xml").write_bytes(instance("uuid:cli-2"))
        shutil.copytree(src / "a", src / "b")
    elif setup == "incomplete":
        (src / "a" / "1.jpg.enc").unlink()
    elif setup == "conflict":
        collect(src / "b", key, "uuid:cli-1", answer="other")
    elif setup == "signature_invalid":
        enc.manifest.write_text(enc.manifest.read_text().replace('version="7"', 'version="8"'))
    elif setup == "failed":
        collect(src / "b", other_key, "uuid:cli-3")
    result = runner.invoke(app, ["decrypt", str(src), "--key", str(key_file), "--out", str(tmp_path / "out")])
    assert result.exit_code == exit_code, result.output
    assert (tmp_path / "out" / crypto.LOG_NAME).exists()


def test_cli_passphrase_sources_and_wrong_passphrase(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    protected = protected_key(tmp_path / "k.pem", key, b"right passphrase")
    collect(tmp_path / "in" / "a", key, "uuid:pp-1")
    base = ["decrypt", str(tmp_path / "in"), "--key", str(protected), "--out", str(tmp_path / "out")]
    monkeypatch.delenv(crypto.PASSPHRASE_ENV, raising=False)
    missing = runner.invoke(app, base)
    assert missing.exit_code == 3 and "passphrase" in missing.output
    (tmp_path / "wrong.txt").write_text("wrong passphrase\n")
    wrong = runner.invoke(app, [*base, "--passphrase-file", str(tmp_path / "wrong.txt")])
    assert wrong.exit_code == 3 and "passphrase is wrong" in wrong.output
    assert "wrong passphrase" not in wrong.output
    (tmp_path / "right.txt").write_text("right passphrase\r\n")
    assert runner.invoke(app, [*base, "--passphrase-file", str(tmp_path / "right.txt")]).exit_code == 0
    monkeypatch.setenv(crypto.PASSPHRASE_ENV, "right passphrase")
    assert runner.invoke(app, [*base, "--json"]).exit_code == 0
    monkeypatch.setenv(crypto.PASSPHRASE_ENV, "nope")
    assert runner.invoke(app, base).exit_code == 3


def test_cli_central_managed_key_and_unreadable_key(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    record = tmp_path / "keys-row.json"
    record.write_text(json.dumps(central_record(key, b"supersecret")))
    collect(tmp_path / "in" / "a", key, "uuid:cm-1")
    (tmp_path / "p.txt").write_text("supersecret")
    ok = runner.invoke(
        app,
        [
            "decrypt",
            str(tmp_path / "in"),
            "--key",
            str(record),
            "--passphrase-file",
            str(tmp_path / "p.txt"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    public = tmp_path / "pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bad = runner.invoke(
        app, ["decrypt", str(tmp_path / "in"), "--key", str(public), "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code == 3 and "public key" in bad.output


def test_record_falls_back_to_a_file_and_folders_without_record_are_adopted(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:x-1")

    def no_xattr(*_args: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", no_xattr)
    monkeypatch.setattr(os, "getxattr", no_xattr)
    first = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert first.submissions[0].status == "ok" and (tmp_path / "out" / "x-1" / crypto.STAMP_NAME).exists()
    again = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert again.submissions[0].reason_code == crypto.ALREADY_DONE
    # Copied elsewhere without the record: the same content is adopted, not reported as a conflict.
    (tmp_path / "out" / "x-1" / crypto.STAMP_NAME).unlink()
    adopted = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.status, r.folder) for r in adopted.submissions] == [("ok", "x-1")]
    assert not (tmp_path / "out" / "x-1__2").exists()


def test_partial_and_complete_copies_of_one_submission(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """Pulled twice: once before a photo arrived, once after. The complete copy wins in either order."""
    collect(tmp_path / "a" / "1" / "x", key, "uuid:pc-1")
    shutil.copytree(tmp_path / "a" / "1" / "x", tmp_path / "a" / "2" / "x")
    (tmp_path / "a" / "1" / "x" / "1.jpg.enc").unlink()  # first pull: photo missing
    result = crypto.decrypt([tmp_path / "a"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in result.submissions] == ["incomplete", "ok"]
    assert "replaced the incomplete copy" in result.submissions[1].message
    assert (tmp_path / "out" / "pc-1" / "1.jpg").exists() and not (tmp_path / "out" / "pc-1__2").exists()
    # The other order: complete first, partial second.
    shutil.move(tmp_path / "a" / "1", tmp_path / "a" / "3")
    other = crypto.decrypt([tmp_path / "a"], key=key, out_dir=tmp_path / "out2")
    assert [r.status for r in other.submissions] == ["ok", "duplicate"]


@pytest.mark.parametrize(("inputs", "out"), [(["field"], "field/decrypted"), (["field/x"], "field"), (["field"], "field")])
def test_out_and_inputs_must_not_overlap(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path, inputs: list[str], out: str
) -> None:
    """OUT inside an input would be read back on every re-run (spurious __2 conflicts); an input inside OUT likewise."""
    collect(tmp_path / "field" / "x", key, "uuid:in-1")
    with pytest.raises(ToolkitError) as refused:
        crypto.decrypt([tmp_path / i for i in inputs], key=key, out_dir=tmp_path / out)
    assert refused.value.issue.code == crypto.OUT_OVERLAPS_INPUT
    cli = runner.invoke(app, ["decrypt", *(str(tmp_path / i) for i in inputs), "--key", str(key_file), "--out", str(tmp_path / out)])
    assert cli.exit_code == 2 and "outside the inputs" in cli.output
    assert not (tmp_path / out / crypto.LOG_NAME).exists()


def test_rerun_with_a_partial_copy_first_keeps_the_complete_output(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    collect(tmp_path / "b" / "x", key, "uuid:pc-2")
    crypto.decrypt([tmp_path / "b"], key=key, out_dir=tmp_path / "out")
    shutil.copytree(tmp_path / "b" / "x", tmp_path / "a" / "x")
    (tmp_path / "a" / "x" / "1.jpg.enc").unlink()
    again = crypto.decrypt([tmp_path / "a", tmp_path / "b"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in again.submissions] == ["duplicate", "ok"]
    assert (tmp_path / "out" / "pc-2" / "1.jpg").exists()


def test_an_internal_error_on_one_submission_does_not_stop_the_run(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:ie-1")
    collect(tmp_path / "in" / "b", key, "uuid:ie-2")
    real = crypto_manifest._read_manifest

    def flaky(root, repaired):  # type: ignore[no-untyped-def]
        manifest = real(root, repaired)
        if manifest.instance_id == "uuid:ie-1":
            raise RuntimeError(SECRET_ANSWER)
        return manifest

    monkeypatch.setattr(submission, "_read_manifest", flaky)  # the name _process looks up
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.status, r.reason_code) for r in result.submissions] == [
        ("failed", crypto.INTERNAL_ERROR),
        ("ok", ""),
    ]
    assert SECRET_ANSWER not in result.submissions[0].message


def test_hidden_prompt_only_on_a_terminal(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(crypto.PASSPHRASE_ENV, raising=False)
    protected = protected_key(tmp_path / "k.pem", key, b"typed at the prompt")
    collect(tmp_path / "in" / "a", key, "uuid:tty-1")
    answers = iter(["typed at the prompt", "one", "two"])
    monkeypatch.setattr(cli_crypto.getpass, "getpass", lambda prompt, stream=None: next(answers))
    terminal = SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True), stderr=io.StringIO())
    monkeypatch.setattr(cli_crypto, "sys", terminal)
    ok = runner.invoke(
        app, ["decrypt", str(tmp_path / "in"), "--key", str(protected), "--out", str(tmp_path / "o")]
    )
    assert ok.exit_code == 0, ok.output
    mismatch = runner.invoke(app, ["keys", "new", "--out", str(tmp_path / "keys")])
    assert mismatch.exit_code == 2 and not (tmp_path / "keys" / "private.pem").exists()


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("photo.jpg", True),
        ("Фото 1 (копия).jpg", True),
        ("a\x00b.jpg", False),
        ("a\nb", False),
        ("..", False),
        ("a/b", False),
        ("a\\b", False),
        ("C:x", False),
        ("/abs", False),
        ("x" * 256, False),
        (crypto.STAMP_NAME, False),
    ],
)
def test_plain_name_rule(name: str, ok: bool) -> None:
    assert crypto_manifest.plain_name_ok(name) is ok


def test_damaged_plaintext_instance_is_reported_other_xml_ignored(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    (tmp_path / "in" / "draft").mkdir(parents=True)
    (tmp_path / "in" / "draft" / "draft.xml").write_bytes(instance("uuid:dmg-1")[:-20])  # cut short
    (tmp_path / "in" / "settings.xml").write_text("<config><a>1</a>")  # not a submission, not well-formed
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.status, r.reason_code) for r in result.submissions] == [("failed", crypto.MANIFEST_INVALID)]


def _damaged_copy(good: Path, damaged: Path) -> None:
    """A copy of a submission with one byte of submission.xml.enc flipped: same sizes, different content."""
    shutil.copytree(good, damaged)
    enc = damaged / "submission.xml.enc"
    data = bytearray(enc.read_bytes())
    data[20] ^= 0x01
    enc.write_bytes(bytes(data))


@pytest.mark.parametrize("damaged_first", [True, False])
def test_a_damaged_copy_never_hides_or_replaces_the_good_one(
    tmp_path: Path, key: rsa.RSAPrivateKey, damaged_first: bool
) -> None:
    good = tmp_path / "in" / ("2" if damaged_first else "1") / "first"
    collect(good, key, "uuid:twin-1")
    _damaged_copy(good, tmp_path / "in" / ("1" if damaged_first else "2") / "first")
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    by_source = {Path(r.source).parts[-3]: r for r in result.submissions}
    good_row = by_source["2" if damaged_first else "1"]
    assert good_row.status == "ok" and good_row.folder == "twin-1"
    assert SECRET_ANSWER.encode() in (tmp_path / "out" / "twin-1" / "submission.xml").read_bytes()
    damaged_row = by_source["1" if damaged_first else "2"]
    assert damaged_row.status in {"signature_invalid", "conflict"}
    assert damaged_row.status != "duplicate"


def test_a_later_run_with_a_damaged_copy_keeps_the_verified_output(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    good = tmp_path / "in1" / "first"
    collect(good, key, "uuid:twin-2")
    crypto.decrypt([tmp_path / "in1"], key=key, out_dir=tmp_path / "out")
    before = tree_digest(tmp_path / "out" / "twin-2")
    _damaged_copy(good, tmp_path / "in2" / "first")
    again = crypto.decrypt([tmp_path / "in2"], key=key, out_dir=tmp_path / "out")
    assert [r.status for r in again.submissions] == ["conflict"]
    assert tree_digest(tmp_path / "out" / "twin-2") == before


# --- one bad input does not stop the run (issue 14, items 7-12, 16, 17)
# ---------------------------------------------------------------------------------------------
UNSAFE_IDS = [
    ".",
    "..",
    "decrypt-log.csv",
    "uuid:DECRYPT-LOG.CSV",
    ".migkit-partial",
    crypto.STAMP_NAME,
    "uuid:../../escape",
    "uuid:/abs",
    "uuid:a/b",
    "a\\b",
    "hh__2",
    "CON",
    "x~y",
    "trailing-dot.",
    "uuid:" + "я" * 127,  # 254 bytes
    "uuid:" + "я" * 126 + "ю",  # 254 bytes, differs only at the end
]


def test_any_instance_id_gets_a_safe_unique_folder_recorded_in_the_log(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    """Unsafe, reserved and over-long instanceIDs each decrypt into their own folder; the log says which."""
    for n, instance_id in enumerate(UNSAFE_IDS):
        collect(tmp_path / "in" / f"s{n:02d}", key, instance_id)
    collect(tmp_path / "in" / "z", key, "uuid:plain-1")
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    logged = rows(tmp_path / "out")
    assert [r["status"] for r in logged] == ["ok"] * (len(UNSAFE_IDS) + 1)
    assert [r["instance_id"] for r in logged] == [*UNSAFE_IDS, "uuid:plain-1"]
    folders = [r["folder"] for r in logged]
    assert len(set(folders)) == len(folders) and folders[-1] == "plain-1"
    for row in logged:
        folder = tmp_path / "out" / row["folder"]
        assert folder.parent == tmp_path / "out" and folder.is_dir()
        assert f"<instanceID>{row['instance_id']}</instanceID>" in (folder / "submission.xml").read_text()
    assert not (tmp_path / "escape").exists() and (tmp_path / "out" / crypto.LOG_NAME).is_file()
    assert [r.folder for r in result.submissions] == folders
    again = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")  # re-runs find them again
    assert {(r.status, r.reason_code) for r in again.submissions} == {("ok", crypto.ALREADY_DONE)}


ANY_ID = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300)


@settings(max_examples=400, deadline=None)
@given(first=ANY_ID, second=ANY_ID)
def test_instance_folder_is_always_safe_and_unique(tmp_path_factory: pytest.TempPathFactory, first: str, second: str) -> None:
    for instance_id in (first, second):
        folder = crypto.instance_folder(instance_id)
        assert folder == crypto.instance_folder(instance_id)  # the same on every run
        assert len(folder.encode("utf-8")) <= crypto.FOLDER_MAX_BYTES
        assert "/" not in folder and "\\" not in folder and "\0" not in folder
        assert not folder.startswith(".") and folder.casefold() != crypto.LOG_NAME
        assert not re.search(r"__\d+$", folder)  # never taken for a conflict copy
        assert Path("/out", folder).parent == Path("/out")
    same_id = first.removeprefix("uuid:") == second.removeprefix("uuid:")
    assert (crypto.instance_folder(first) == crypto.instance_folder(second)) is same_id


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ANY_ID.filter(lambda s: s.strip() == s and s.isprintable()), min_size=1, max_size=4, unique=True))
def test_the_log_maps_every_instance_id_back_to_its_folder(
    tmp_path_factory: pytest.TempPathFactory, key: rsa.RSAPrivateKey, ids: list[str]
) -> None:
    ids = list({i.removeprefix("uuid:"): i for i in ids}.values())
    base = tmp_path_factory.mktemp("ids")
    for n, instance_id in enumerate(ids):
        collect(base / "in" / f"s{n}", key, instance_id, media=())
    crypto.decrypt([base / "in"], key=key, out_dir=base / "out")
    by_id = {row["instance_id"]: row["folder"] for row in rows(base / "out")}
    assert set(by_id) == set(ids)
    for instance_id, folder in by_id.items():
        assert (base / "out" / folder / "submission.xml").read_bytes() == instance(instance_id)


def test_an_error_committing_one_submission_is_its_row(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:commit-1")
    collect(tmp_path / "in" / "b", key, "uuid:commit-2")
    real_rename = os.rename

    def rename(source: str, target: str) -> None:
        if str(target).endswith("commit-1"):
            raise PermissionError(13, "Permission denied")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.status, r.reason_code) for r in result.submissions] == [
        ("failed", crypto.COMMIT_FAILED),
        ("ok", ""),
    ]
    assert "Permission denied" in result.submissions[0].message
    assert [r["status"] for r in rows(tmp_path / "out")] == ["failed", "ok"]
    assert not (tmp_path / "out" / crypto.PARTIAL_DIR).exists()


@pytest.mark.parametrize("damage", ["truncated", "not_a_zip", "empty"])
def test_one_damaged_zip_is_one_failed_row_and_the_rest_go_on(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path, damage: str
) -> None:
    enc = collect(tmp_path / "src" / "hh_1", key, "uuid:zipdmg-1")
    good = tmp_path / "in" / "good.zip"
    good.parent.mkdir()
    with zipfile.ZipFile(good, "w") as zf:
        for path in (*enc.files, enc.manifest):
            zf.writestr(f"hh_1/{path.name}", path.read_bytes())
    bad = tmp_path / "in" / "a-bad.zip"
    data = good.read_bytes()
    bad.write_bytes({"truncated": data[: len(data) // 2], "not_a_zip": b"PK\x03\x04 not really", "empty": b""}[damage])
    collect(tmp_path / "in" / "plain" / "hh_2", key, "uuid:zipdmg-2")
    result = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
    assert [(r.source, r.status, r.reason_code) for r in result.submissions] == [
        (str(bad), "failed", crypto.ZIP_UNREADABLE),
        (f"{good}!hh_1/hh_1.xml", "ok", ""),
        (str(tmp_path / "in" / "plain" / "hh_2" / "hh_2.xml"), "ok", ""),
    ]
    assert len(rows(tmp_path / "out")) == 3
    cli = runner.invoke(app, ["decrypt", str(tmp_path / "in"), "--key", str(key_file), "--out", str(tmp_path / "o2")])
    assert cli.exit_code == 1 and "zip" in cli.output


def test_a_zip_bomb_is_refused_without_filling_the_disk(
    tmp_path: Path, key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member expanding ~1000x is refused before it is written; the zip is one failed row, the other inputs go on,
    and nothing is unpacked outside OUT's work folder (removed at the end, and by the next run after a kill -9)."""
    bomb = tmp_path / "in" / "bomb.zip"
    bomb.parent.mkdir()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("instances/x/x.xml", b"<data>" + b" " * (8 << 20) + b"</data>")
    collect(tmp_path / "in" / "hh_1", key, "uuid:bomb-1")
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: list[list[str]] = []
    result = crypto.decrypt(
        [tmp_path / "in"],
        key=key,
        out_dir=tmp_path / "out",
        on_result=lambda _: seen.append(sorted(p.name for p in scratch.iterdir())),
    )
    assert [(r.status, r.reason_code) for r in result.submissions] == [
        ("failed", crypto.ZIP_TOO_LARGE),
        ("ok", ""),
    ]
    assert "zip bomb" in result.submissions[0].message
    assert seen == [[], []]  # nothing unpacked in the system's temporary folder
    assert not (tmp_path / "out" / crypto.PARTIAL_DIR).exists()


def test_the_work_folder_is_removed_when_the_run_is_interrupted(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "src" / "hh_1", key, "uuid:intr-1")
    archive = tmp_path / "pull.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (*enc.files, enc.manifest):
            zf.writestr(f"hh_1/{path.name}", path.read_bytes())

    def interrupt(_: crypto.SubmissionResult) -> None:
        assert any((tmp_path / "out" / crypto.PARTIAL_DIR / "zips").rglob("*.enc"))  # unpacked inside OUT
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        crypto.decrypt([archive], key=key, out_dir=tmp_path / "out", on_result=interrupt)
    assert not (tmp_path / "out" / crypto.PARTIAL_DIR).exists()


def test_a_second_run_on_the_same_out_is_told_clearly(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path
) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:lock-1")
    out = tmp_path / "out"
    out.mkdir()
    holder = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a first run holds while it writes
        with pytest.raises(ToolkitError) as refused:
            crypto.decrypt([tmp_path / "in"], key=key, out_dir=out)
        assert refused.value.issue.code == crypto.OUT_LOCKED
        cli = runner.invoke(app, ["decrypt", str(tmp_path / "in"), "--key", str(key_file), "--out", str(out)])
        assert cli.exit_code == 3 and "another `migkit decrypt` run" in cli.output
        assert list(out.iterdir()) == []  # the first run's work folder was not touched
    finally:
        os.close(holder)
    assert [r.status for r in crypto.decrypt([tmp_path / "in"], key=key, out_dir=out).submissions] == ["ok"]


def test_two_runs_at_once_on_one_out(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """While one run writes, a second one started on the same OUT is refused, and the first finishes intact."""
    for n in range(6):
        collect(tmp_path / "in" / f"s{n}", key, f"uuid:two-{n}")
    outcomes: list[str] = []

    def start_second(_: crypto.SubmissionResult) -> None:
        if not outcomes:
            try:
                crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out")
            except ToolkitError as exc:
                outcomes.append(exc.issue.code)

    first = crypto.decrypt([tmp_path / "in"], key=key, out_dir=tmp_path / "out", on_result=start_second)
    assert outcomes == [crypto.OUT_LOCKED]
    assert [r.status for r in first.submissions] == ["ok"] * 6 and len(rows(tmp_path / "out")) == 6


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (the suite runs as root, here and in CI): a disk that really fills up."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, f"this test needs root to mount a small tmpfs: {made.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_stops_cleanly_and_keeps_the_log(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path, small_disk: Path, workers: int
) -> None:
    photo = os.urandom(400 << 10)  # does not compress: 15 of them fill the disk
    for n in range(24):
        collect(tmp_path / "in" / f"s{n:02d}", key, f"uuid:full-{n:02d}", media=(("p.jpg", photo),))
    with pytest.raises(ToolkitError) as stopped:
        crypto.decrypt([tmp_path / "in"], key=key, out_dir=small_disk / "out", workers=workers)
    issue = stopped.value.issue
    assert issue.code == crypto.DISK_FULL and str(small_disk) in issue.message and "is full" in issue.message
    logged = rows(small_disk / "out")
    assert 0 < len(logged) < 24 and {r["status"] for r in logged} == {"ok"}
    assert f"{len(logged)} submission(s)" in issue.message
    for row in logged:  # each row logged is whole in OUT
        assert (small_disk / "out" / row["folder"] / "p.jpg").read_bytes() == photo
    assert sorted(p.name for p in (small_disk / "out").iterdir()) == sorted([crypto.LOG_NAME, *(r["folder"] for r in logged)])
    # One worker: with several, the batch in flight when the disk fills is not logged (see the message above).
    again_args = ["decrypt", str(tmp_path / "in"), "--key", str(key_file), "--out", str(small_disk / "out")]
    cli = runner.invoke(app, [*again_args, "--workers", "1"])
    assert cli.exit_code == 3 and "is full" in cli.output and "unexpected" not in cli.output
    again = rows(small_disk / "out")  # what was written is verified and skipped, then the disk fills up again
    assert [r["reason_code"] for r in again[: len(logged)]] == [crypto.ALREADY_DONE] * len(logged)


def test_a_manifest_padded_with_leading_comments_is_still_capped(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    enc = collect(tmp_path / "in" / "x", key, "uuid:pad-1")
    padding_comment = "<!--" + "x" * (crypto.MANIFEST_MAX_BYTES + 10) + "-->"
    enc.manifest.write_text(enc.manifest.read_text().replace("<data ", padding_comment + "<data ", 1))
    result = crypto.decrypt_submission(enc.manifest, key=key, out_dir=tmp_path / "out")
    assert (result.status, result.reason_code) == ("failed", crypto.MANIFEST_UNSAFE)
    assert "limit" in result.message


def test_an_instance_id_with_a_slash_is_shown_whole(tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path) -> None:
    collect(tmp_path / "in" / "a", key, "uuid:region/7/hh-12")
    collect(tmp_path / "in" / "b", key, "uuid:region/7/hh-12", answer="edited")  # a conflict: it is printed
    cli = runner.invoke(
        app, ["decrypt", str(tmp_path / "in"), "--key", str(key_file), "--out", str(tmp_path / "out")], terminal_width=400
    )
    assert cli.exit_code == 1
    assert "instance uuid:region/7/hh-12: " in cli.output and "[decrypt.conflict]" in cli.output
    logged = rows(tmp_path / "out")
    assert [r["instance_id"] for r in logged] == ["uuid:region/7/hh-12"] * 2
    assert logged[0]["folder"] == crypto.instance_folder("uuid:region/7/hh-12")
    assert logged[1]["folder"] == logged[0]["folder"] + "__2"
    assert not (tmp_path / "out" / "region").exists()


def test_after_kill_9_nothing_is_left_outside_out_and_the_next_run_clears_it(
    tmp_path: Path, key: rsa.RSAPrivateKey, key_file: Path
) -> None:
    """A zip is unpacked inside OUT's work folder, never in the system's temporary folder, so a run killed with
    SIGKILL leaves nothing behind that the next run on the same OUT does not remove."""
    archive = tmp_path / "pull.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(150):
            enc = collect(tmp_path / "src" / f"s{n:03d}", key, f"uuid:kill-{n:03d}", media=())
            for path in (*enc.files, enc.manifest):
                zf.writestr(f"s{n:03d}/{path.name}", path.read_bytes())
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "toolkit", "decrypt", str(archive), "--key", str(key_file), "--out", str(out)]
    child = subprocess.Popen(command, env={**os.environ, "TMPDIR": str(system_tmp)}, cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 60
        while not any((out / crypto.PARTIAL_DIR).glob("zips/*/s*")) and not any(system_tmp.iterdir()):
            assert child.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert list(system_tmp.iterdir()) == []
    assert not (out / crypto.LOG_NAME).exists()
    result = crypto.decrypt([archive], key=key, out_dir=out)
    assert result.counts["ok"] == 150 and not (out / crypto.PARTIAL_DIR).exists()
