"""Issue codes of keys and decrypt (stable, never reused), and the peer rules that recover a signature.

Codes are defined here once, at import, so that every module of the package (and the CLI) names the same ones.
"""

from __future__ import annotations

from toolkit.errors import define

KEY_UNREADABLE = define("key.unreadable", "The private key file cannot be read as an RSA private key")
KEY_PUBLIC_GIVEN = define(
    "key.public_given", "A public key or certificate was given where the private key is needed"
)
KEY_PASSPHRASE_NEEDED = define(
    "key.passphrase_needed", "The private key is protected and no passphrase was given"
)
KEY_PASSPHRASE_WRONG = define("key.passphrase_wrong", "The passphrase does not open the private key")
KEY_EXISTS = define("key.exists", "A key file already exists; keys are never overwritten")
KEY_BAD_SIZE = define("key.bad_size", "Unsupported RSA key size")
FORM_NO_WORKBOOK = define("keys.form_unreadable", "The XLSForm cannot be opened as an .xlsx workbook")

WRONG_KEY = define("decrypt.wrong_key", "The submission was encrypted for a different public key")
KEY_BLOCK_CORRUPT = define("decrypt.key_corrupt", "The wrapped AES key is damaged")
XML_MISSING = define("decrypt.xml_missing", "The encrypted submission.xml listed in the manifest is missing")
XML_CORRUPT = define(
    "decrypt.xml_corrupt", "The encrypted submission.xml does not decrypt (damaged or truncated)"
)
MANIFEST_INVALID = define("decrypt.manifest_invalid", "The submission manifest cannot be read")
MANIFEST_UNSAFE = define("decrypt.manifest_unsafe", "The manifest asks for something unsafe and was refused")
MEDIA_MISSING = define("decrypt.media_missing", "A media file listed in the manifest is missing")
MEDIA_CORRUPT = define("decrypt.media_corrupt", "A media file does not decrypt (damaged or truncated)")
SIGNATURE_MISMATCH = define(
    "decrypt.signature_mismatch", "Decrypted, but the signature does not match the files"
)
SIGNATURE_UNVERIFIABLE = define("decrypt.signature_unverifiable", "The signature element cannot be read")
PLAINTEXT = define("decrypt.plaintext", "The submission is not encrypted and was copied through")
DUPLICATE = define("decrypt.duplicate", "The same submission was already decrypted")
CONFLICT = define("decrypt.conflict", "Another submission with the same instanceID but other content exists")
ALREADY_DONE = define("decrypt.already_done", "Decrypted in an earlier run; outputs verified and kept")
ZIP_UNSAFE = define("decrypt.zip_unsafe_member", "A zip member would land outside the extraction folder")
ZIP_UNREADABLE = define("decrypt.zip_unreadable", "A zip file among the inputs is damaged or truncated")
ZIP_TOO_LARGE = define(
    "decrypt.zip_too_large", "A zip file unpacks to more than its size allows (a zip bomb?) and was refused"
)
OUT_LOCKED = define("decrypt.out_locked", "Another decrypt run is writing into the same output folder")
OUT_OVERLAPS_INPUT = define(
    "decrypt.out_overlaps_input", "The output folder is inside an input folder, or an input inside it"
)
DISK_FULL = define("decrypt.disk_full", "The disk holding the output folder is full")
COMMIT_FAILED = define("decrypt.commit_failed", "A decrypted submission could not be moved into the output folder")
MGF1_SHA1 = define("decrypt.mgf1_sha1", "The AES key was wrapped with OAEP MGF1-SHA1 (SunJCE-style encryptor)")
INTERNAL_ERROR = define("decrypt.internal_error", "migkit failed on this submission; the run went on")
ENVELOPE_REPAIRED = define("decrypt.envelope_repaired", "The manifest was not well-formed XML and was repaired")

# Rules that recover a signature (recorded as reason code decrypt.recovered.<rule>).
RULES: dict[str, str] = {
    "empty_version_absent": "the empty version was left out of the signature (Enketo, valigetta)",
    "empty_version_line": "the empty version was kept as an empty signature line (Collect)",
    "names_with_enc": "media names were signed with their .enc suffix",
    "enketo_legacy_hash": (
        "MD5 taken over UTF-16 code units instead of UTF-8 bytes (Enketo before 2025-08, enketo/enketo#1421)"
    ),
    "root_instance_id": "the instanceID of the manifest's root attribute was used (valigetta order)",
    "meta_instance_id": "the instanceID of meta/instanceID was used (Briefcase order)",
    "enketo_iv_overflow": (
        "IV bytes were incremented past 255 without wrapping (Enketo encryptor.js Seed, node-forge)"
    ),
    "enketo_legacy_seed": (
        "the IV seed hashed a non-ASCII instanceID as UTF-16 code units (Enketo before 2025-08)"
    ),
}
for _rule, _text in RULES.items():
    define(f"decrypt.recovered.{_rule}", f"Signature verified after allowing for: {_text}")

SIGNATURE_CAUSES = (
    "exported anyway, as Briefcase does. A mismatch means the files are not exactly what the device signed: "
    "a file "
    "was changed, re-encoded or swapped after encryption, the manifest's instanceID or file list was edited, "
    "or the "
    "encryptor computed the signature in a way migkit does not know. Compare the answers with the field team "
    "before using them"
)
