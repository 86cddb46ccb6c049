"""ODK encrypted submissions: key pairs, offline decryption, and a Collect-compatible encryptor.

The scheme (specs/odk-encryption.md section 1, after getodk/collect `EncryptionUtils.java`):

* every submission has its own random 32-byte AES key, wrapped with the form's RSA public key using OAEP
  (SHA-256, MGF1-SHA-256, empty label) and stored as `base64EncryptedKey` in a plaintext manifest;
* every file is encrypted with AES-256-CFB128 plus PKCS#7 padding; the IV of file k (0-based, manifest order,
  media first and `submission.xml` last) is MD5(instanceID + key) with k+1 single-byte increments spread
  round-robin over its 16 bytes;
* `base64EncryptedElementSignature` is the RSA-wrapped MD5 of form id, version, wrapped key, instanceID and
  `name::md5` per decrypted file, each followed by a newline.

Peers that encrypt differently (Enketo, SunJCE, Central's simulator) are read too: when a submission decrypts
but its signature does not verify, the derivations those encryptors really use are tried, and the row names
the rule that recovered it. This package does not use pandas so that it can be audited on its own. It never
logs key material, passphrases or decrypted content.

It serves `migkit keys new` and `migkit keys attach` (`keys`), `migkit decrypt` and the decrypt step of
`migkit run` (`run`), and `migkit simulate` and bench/decrypt.py (`encrypt`). Modules, in dependency order:

* `codes`: issue codes and the signature-recovery rules; `results`: log rows, run totals, the layout of OUT;
* `scheme`: OAEP, IV seeds and IVs (Collect and Enketo), node-forge MD5, AES-CFB/PKCS#7, one file, signature text;
* `keys`: passphrases, private keys in every form, key pairs, the XLSForm `public_key`;
* `manifest`: safe XML parsing, manifests, plain-name rules; `encrypt`: Collect-compatible encryption;
* `stamps`: what an output folder holds; `submission`: one submission in a worker process;
* `commit`: duplicates, conflicts and replacements in OUT (main process); `run`: finding inputs, the
  process pool, `decrypt`, `decrypt_submission`, `iter_log`.

Everything other modules use is re-exported here; private helpers stay in their modules.
"""

from toolkit.crypto.codes import (
    ALREADY_DONE,
    COMMIT_FAILED,
    CONFLICT,
    DISK_FULL,
    DUPLICATE,
    ENVELOPE_REPAIRED,
    FORM_NO_WORKBOOK,
    INTERNAL_ERROR,
    KEY_BAD_SIZE,
    KEY_BLOCK_CORRUPT,
    KEY_EXISTS,
    KEY_PASSPHRASE_NEEDED,
    KEY_PASSPHRASE_WRONG,
    KEY_PUBLIC_GIVEN,
    KEY_UNREADABLE,
    MANIFEST_INVALID,
    MANIFEST_UNSAFE,
    MEDIA_CORRUPT,
    MEDIA_MISSING,
    MGF1_SHA1,
    OUT_LOCKED,
    OUT_OVERLAPS_INPUT,
    PLAINTEXT,
    RULES,
    SIGNATURE_CAUSES,
    SIGNATURE_MISMATCH,
    SIGNATURE_UNVERIFIABLE,
    WRONG_KEY,
    XML_CORRUPT,
    XML_MISSING,
    ZIP_TOO_LARGE,
    ZIP_UNREADABLE,
    ZIP_UNSAFE,
)
from toolkit.crypto.encrypt import COLLECT_NS, OPENROSA_NS, EncryptedSubmission, encrypt_submission
from toolkit.crypto.keys import (
    CENTRAL_PBKDF2_ROUNDS,
    KEY_SIZES,
    PASSPHRASE_ENV,
    AttachResult,
    KeyPairResult,
    LoadedKey,
    attach_public_key,
    generate_keypair,
    key_needs_passphrase,
    load_private_key,
    public_key_base64,
    read_passphrase_file,
)
from toolkit.crypto.manifest import (
    BASE64_MAX_CHARS,
    FOLDER_MAX_BYTES,
    ID_MAX_CHARS,
    MEDIA_MAX_FILES,
    NAME_MAX_BYTES,
    instance_folder,
)
from toolkit.crypto.results import (
    CONFLICT_SEPARATOR,
    GOOD_STATUSES,
    LOG_COLUMNS,
    LOG_NAME,
    PARTIAL_DIR,
    STAMP_NAME,
    STAMP_XATTR,
    DecryptResult,
    Status,
    SubmissionResult,
)
from toolkit.crypto.run import count_submissions, decrypt, decrypt_submission, iter_log
from toolkit.crypto.scheme import (
    AES_KEY_BYTES,
    BLOCK,
    CHUNK_BYTES,
    OAEP_SHA256,
    RSA_BLOCK_SIZES,
    collect_iv,
    enketo_iv,
    enketo_legacy_seed,
    forge_md5,
    iv_seed,
    rsa_wrap,
)
from toolkit.crypto.submission import MANIFEST_MAX_BYTES, PLAINTEXT_XML_MAX_BYTES

__all__ = [
    "AES_KEY_BYTES",
    "ALREADY_DONE",
    "BASE64_MAX_CHARS",
    "BLOCK",
    "CENTRAL_PBKDF2_ROUNDS",
    "CHUNK_BYTES",
    "COLLECT_NS",
    "COMMIT_FAILED",
    "CONFLICT",
    "CONFLICT_SEPARATOR",
    "DISK_FULL",
    "DUPLICATE",
    "ENVELOPE_REPAIRED",
    "FOLDER_MAX_BYTES",
    "FORM_NO_WORKBOOK",
    "GOOD_STATUSES",
    "ID_MAX_CHARS",
    "INTERNAL_ERROR",
    "KEY_BAD_SIZE",
    "KEY_BLOCK_CORRUPT",
    "KEY_EXISTS",
    "KEY_PASSPHRASE_NEEDED",
    "KEY_PASSPHRASE_WRONG",
    "KEY_PUBLIC_GIVEN",
    "KEY_SIZES",
    "KEY_UNREADABLE",
    "LOG_COLUMNS",
    "LOG_NAME",
    "MANIFEST_INVALID",
    "MANIFEST_MAX_BYTES",
    "MANIFEST_UNSAFE",
    "MEDIA_CORRUPT",
    "MEDIA_MAX_FILES",
    "MEDIA_MISSING",
    "MGF1_SHA1",
    "NAME_MAX_BYTES",
    "OAEP_SHA256",
    "OPENROSA_NS",
    "OUT_LOCKED",
    "OUT_OVERLAPS_INPUT",
    "PARTIAL_DIR",
    "PASSPHRASE_ENV",
    "PLAINTEXT",
    "PLAINTEXT_XML_MAX_BYTES",
    "RSA_BLOCK_SIZES",
    "RULES",
    "SIGNATURE_CAUSES",
    "SIGNATURE_MISMATCH",
    "SIGNATURE_UNVERIFIABLE",
    "STAMP_NAME",
    "STAMP_XATTR",
    "WRONG_KEY",
    "XML_CORRUPT",
    "XML_MISSING",
    "ZIP_TOO_LARGE",
    "ZIP_UNREADABLE",
    "ZIP_UNSAFE",
    "AttachResult",
    "DecryptResult",
    "EncryptedSubmission",
    "KeyPairResult",
    "LoadedKey",
    "Status",
    "SubmissionResult",
    "attach_public_key",
    "collect_iv",
    "count_submissions",
    "decrypt",
    "decrypt_submission",
    "encrypt_submission",
    "enketo_iv",
    "enketo_legacy_seed",
    "forge_md5",
    "generate_keypair",
    "instance_folder",
    "iter_log",
    "iv_seed",
    "key_needs_passphrase",
    "load_private_key",
    "public_key_base64",
    "read_passphrase_file",
    "rsa_wrap",
]
