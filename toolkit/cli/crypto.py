"""`migkit keys new`, `migkit keys attach` and `migkit decrypt`.

Passphrases come from --passphrase-file, the environment variable MIGKIT_PASSPHRASE, or a hidden prompt when
stdin is a terminal; never from the command line, where other users could read them in the process list.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, progress_bar, shown, usage_error
from toolkit.cli.render import fields_of, out_option, print_issues, render
from toolkit.errors import Issue
from toolkit.settings import PASSPHRASE_ENV

# toolkit.crypto (cryptography, lxml) is imported inside the commands that use it: every migkit command,
# `--help` included, imports this module, so a top-level import would slow each start-up.
if TYPE_CHECKING:
    from toolkit import crypto

keys_app = typer.Typer(help="Make RSA key pairs for encrypted forms and attach public keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"File holding the passphrase (else ${PASSPHRASE_ENV}, else a hidden prompt on a terminal).",
        exists=True,
        dir_okay=False,
    ),
]


def _passphrase(passphrase_file: Path | None, *, prompt: str | None) -> bytes | None:
    """The passphrase from the file, the environment, or (on a terminal only) a hidden prompt."""
    if passphrase_file is not None:
        from toolkit import crypto

        return crypto.read_passphrase_file(passphrase_file)
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode("utf-8")
    if prompt and sys.stdin.isatty():
        return getpass.getpass(prompt, stream=sys.stderr).encode("utf-8") or None
    return None


def _show_new_key(result: crypto.KeyPairResult) -> None:
    protection = "protected by the passphrase" if result.encrypted else "NOT protected by a passphrase"
    err.print(
        f"wrote {shown(result.private_path)} ({result.bits}-bit, PKCS#8, mode 0600, {protection}) and "
        f"{shown(result.public_path)}"
    )
    err.print("Keep private.pem off the tablets and back it up: without it the submissions cannot be decrypted.")
    err.print("Put this line in the settings sheet, column public_key (or run `migkit keys attach`):")
    typer.echo(result.public_key_base64)


def _new_passphrase(passphrase_file: Path | None) -> bytes | None:
    """The passphrase for a new key; typed at a prompt, it is asked twice and must be the same."""
    secret = _passphrase(passphrase_file, prompt="Passphrase for the new private key (Enter for none): ")
    if secret and passphrase_file is None and not os.environ.get(PASSPHRASE_ENV):
        again = getpass.getpass("The same passphrase again: ", stream=sys.stderr).encode("utf-8")
        if again != secret:
            raise usage_error("the two passphrases differ; nothing was written.")
    return secret


@keys_app.command("new")
@guarded
def keys_new(
    out_dir: Annotated[Path, out_option("Folder for private.pem and public.pem.")],
    bits: Annotated[int, typer.Option("--bits", help="RSA key size: 2048, 3072 or 4096.")] = 2048,
    passphrase_file: PassphraseFileOption = None,
    as_json: JsonOption = False,
) -> int:
    """Make an RSA key pair; print the one-line public key for the XLSForm setting `public_key`."""
    from toolkit import crypto

    if bits not in crypto.KEY_SIZES:
        raise usage_error(f"--bits must be one of {', '.join(map(str, crypto.KEY_SIZES))}.")
    result = crypto.generate_keypair(out_dir, bits=bits, passphrase=_new_passphrase(passphrase_file))
    # paths, size, whether encrypted, and the public key: nothing secret
    return render("keys new", fields_of(result), (), ok=True, as_json=as_json, people=lambda: _show_new_key(result))


@keys_app.command("attach")
@guarded
def keys_attach(
    form: Annotated[Path, typer.Argument(help="The XLSForm (.xlsx).", exists=True, dir_okay=False)],
    public: Annotated[Path, typer.Option("--public", help="public.pem made by `migkit keys new`.", exists=True)],
    as_json: JsonOption = False,
) -> int:
    """Set `public_key` on the settings sheet of an XLSForm (written to a temporary file, then renamed)."""
    from toolkit import crypto

    result = crypto.attach_public_key(form, public_pem=public)
    what = "replaced the previous public_key" if result.replaced else "set public_key"

    def people() -> None:
        err.print(
            f"{shown(result.form)}: {what} on the settings sheet. Rebuild the form and upload it as a new version."
        )

    return render("keys attach", fields_of(result), (), ok=True, as_json=as_json, people=people)


_STYLE = {
    "ok": "green",
    "plaintext": "cyan",
    "duplicate": "cyan",
    "signature_invalid": "yellow",
    "incomplete": "yellow",
    "conflict": "yellow",
    "failed": "red",
}

# At most this many problems are kept for the lines on stderr (the log and --json have every submission).
_PROBLEMS_SHOWN = 1000


def _decrypt_fields(result: crypto.DecryptResult) -> dict[str, object]:
    return {
        "out_dir": result.out_dir,
        "log_path": result.log_path,
        "counts": result.counts,
        "total": result.total,
        "submissions": [row.row() for row in result.submissions],
    }


def _show_decryption(result: crypto.DecryptResult, problems: list[Issue]) -> None:
    table = Table(title=f"Decryption into {shown(result.out_dir)}")
    table.add_column("status")
    table.add_column("submissions", justify="right")
    for status, count in result.counts.items():
        if count:
            table.add_row(f"[{_STYLE.get(status, 'white')}]{status}[/]", str(count))
    out.print(table)
    print_issues(problems)
    err.print(f"log: {shown(result.log_path)}")
    if result.total == 0:
        err.print("No submissions found in the inputs (looked for .xml manifests and instances, and .zip files).")


def _decrypt_progress() -> Progress:
    return progress_bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("submissions"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


@app.command("decrypt")
@guarded
def decrypt_command(
    inputs: Annotated[
        list[Path], typer.Argument(help="Folders (searched recursively) and .zip files with submissions.")
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            help="Private key PEM (PKCS#1/PKCS#8) or a Central managed-key JSON record.",
            exists=True,
            dir_okay=False,
        ),
    ],
    out_dir: Annotated[Path, out_option("Output folder.")],
    passphrase_file: PassphraseFileOption = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=64, help="Processes decrypting in parallel [default: the number of cores]."
        ),
    ] = os.cpu_count() or 1,
    as_json: JsonOption = False,
) -> int:
    """Decrypt ODK encrypted submissions with your private key, offline; write OUT/<instance>/ and a log."""
    from toolkit import crypto

    secret = (
        _passphrase(passphrase_file, prompt=f"Passphrase for {shown(key.name)}: ")
        if crypto.key_needs_passphrase(key)
        else None
    )
    loaded = crypto.load_private_key(key, passphrase=secret)
    problems: list[Issue] = []
    with _decrypt_progress() as progress:
        task = progress.add_task("decrypting", total=crypto.count_submissions(inputs, out_dir) or None)

        def on_result(row: crypto.SubmissionResult) -> None:
            if not row.good and len(problems) < _PROBLEMS_SHOWN:
                problems.append(row.to_issue())
            progress.advance(task)

        result = crypto.decrypt(
            inputs, key=loaded, out_dir=out_dir, workers=workers, keep_results=as_json, on_result=on_result
        )
    issues = [row.to_issue() for row in result.submissions if not row.good]
    ok = result.ok and result.total > 0
    return render(
        "decrypt",
        _decrypt_fields(result),
        issues,
        ok=ok,
        as_json=as_json,
        people=lambda: _show_decryption(result, problems),
    )
