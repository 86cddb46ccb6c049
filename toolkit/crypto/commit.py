"""Committing results into OUT (main process): decides duplicate, conflict or replacement against what OUT
already holds, and renames work folders into place.
"""

# File-wide lint exceptions, each for a reason:
# PTH: every submission is committed with os-level calls on strings; pathlib objects cost measurable time per
#      file at tens of thousands of submissions (bench/decrypt.py).
# PLR0911: a commit returns one log row per decision.
# ruff: noqa: PTH104, PTH105, PLR0911

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.crypto.codes import ALREADY_DONE, CONFLICT, DUPLICATE
from toolkit.crypto.results import CONFLICT_SEPARATOR, PARTIAL_DIR, Status, SubmissionResult
from toolkit.crypto.stamps import content_digest, existing_folders, folder_outputs, read_stamp, write_stamp
from toolkit.crypto.submission import DecryptOutcome

# rename() of a work folder onto OUT/<id> fails with one of these when OUT/<id> is already taken.
_TAKEN_ERRNOS = frozenset({errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR})


class _Committer:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._out_prefix = f"{out_dir}{os.sep}"  # + an instance folder name (never a path)
        self.this_run: dict[str, str] = {}  # folder name -> source that put or verified it in this run

    def commit(self, outcome: DecryptOutcome) -> SubmissionResult:  # noqa: PLR0912, PLR0915
        result = outcome.result
        if outcome.kind == "skipped":
            if outcome.existing in self.this_run:
                return self._dup(result, outcome.existing)
            self.this_run[outcome.existing] = result.source
            message = (
                f"already decrypted into {outcome.existing} by an earlier run; outputs verified, skipped"
            )
            if result.message:
                message += f" (earlier result: {result.message})"
            return _replace(
                result,
                message=message,
                folder=outcome.existing,
                reason_code=result.reason_code or ALREADY_DONE,
            )
        if outcome.kind != "written":
            return result
        if outcome.existing and outcome.existing not in self.this_run:
            replaced = self._replace_earlier(outcome)
            if replaced is not None:
                return replaced
        try:  # the usual case: a new instanceID. Fails when OUT/<id> exists (not empty).
            os.rename(outcome.tmp, self._out_prefix + outcome.folder)
        except OSError as exc:
            if exc.errno not in _TAKEN_ERRNOS:
                raise
        else:
            self.this_run[outcome.folder] = result.source
            return _replace(result, folder=outcome.folder)
        tmp = Path(outcome.tmp)
        for existing in existing_folders(self.out_dir, outcome.folder):
            stamp = read_stamp(existing)
            if stamp is None and existing.name not in self.this_run:
                # A folder without its record (copied without extended attributes, or an interrupted run):
                # identical content is adopted, anything else is a conflict.
                if content_digest(folder_outputs(existing)) == outcome.digest:
                    record = read_stamp(tmp) or {}
                    shutil.rmtree(tmp, ignore_errors=True)
                    write_stamp(existing, record)
                    self.this_run[existing.name] = result.source
                    return _replace(result, folder=existing.name)
                continue
            if stamp is not None and content_digest(stamp.get("outputs") or {}) == outcome.digest:
                shutil.rmtree(tmp, ignore_errors=True)
                if result.status == Status.INCOMPLETE:  # still incomplete: say so rather than "duplicate"
                    return _replace(
                        result,
                        folder=existing.name,
                        message=f"{result.message}; the same partial content is already in "
                        f"{existing.name}, nothing new written",
                    )
                return self._dup(result, existing.name)
            if stamp is None:
                continue
            # The same manifest (same wrapped key and signature) is the same submission: when the copy already
            # there did not verify and this one does, the earlier copy was damaged in transfer; this one wins.
            mine = read_stamp(tmp) or {}
            if (
                stamp.get("status") == Status.SIGNATURE_INVALID
                and result.status == Status.OK
                and stamp.get("manifest_sha256") == mine.get("manifest_sha256")
            ):
                self._swap_in(tmp, existing)
                self.this_run[existing.name] = result.source
                return _replace(
                    result,
                    folder=existing.name,
                    message=f"{result.message}; replaced the copy in {existing.name} whose signature did not "
                    "verify (a copy damaged in transfer)",
                )
            theirs, ours = stamp.get("outputs") or {}, (read_stamp(tmp) or {}).get("outputs") or {}
            if not _same_files(theirs, ours):
                continue
            # The same submission pulled twice with different media present (a photo that arrived later).
            if stamp.get("status") == Status.INCOMPLETE and set(theirs) < set(ours):
                self._swap_in(tmp, existing)
                self.this_run[existing.name] = result.source
                return _replace(
                    result,
                    folder=existing.name,
                    message=f"{result.message}; replaced the incomplete copy in {existing.name}",
                )
            if result.status == Status.INCOMPLETE and set(ours) < set(theirs):
                return self._partial_copy(result, tmp, existing.name)
        n = 2
        while (self.out_dir / f"{outcome.folder}{CONFLICT_SEPARATOR}{n}").exists():
            n += 1
        target = self.out_dir / f"{outcome.folder}{CONFLICT_SEPARATOR}{n}"
        first = self.this_run.get(outcome.folder, "an earlier run")
        message = (
            f"another submission with instanceID {result.instance_id} but different content was decrypted "
            f"into {outcome.folder} (from {first}); both are kept, this one in {target.name}. Find out which "
            f"is the final version (an edited re-submission?) before using either. This one: {result.status}"
            f" - {result.message}"
        )
        conflict = _replace(
            result, status=Status.CONFLICT, reason_code=CONFLICT, message=message, folder=target.name
        )
        write_stamp(
            tmp,
            {
                **(read_stamp(tmp) or {}),
                "status": str(Status.CONFLICT),
                "reason_code": CONFLICT,
                "message": message,
            },
        )
        os.replace(tmp, target)
        self.this_run[target.name] = result.source
        return conflict

    def _replace_earlier(self, outcome: DecryptOutcome) -> SubmissionResult | None:
        """Same manifest as an earlier run whose outputs changed or whose inputs grew: replace atomically, unless
        this copy has fewer files than what is there (a partial pull of a complete submission). A verified output is
        never replaced by a worse copy: None, and that one is kept beside it as a conflict."""
        result, target = outcome.result, self.out_dir / outcome.existing
        earlier = read_stamp(target) or {}
        if earlier.get("status") == Status.OK and result.status != Status.OK:
            return None
        tmp = Path(outcome.tmp)
        before = earlier.get("outputs") or {}
        ours = (read_stamp(tmp) or {}).get("outputs") or {}
        if result.status == Status.INCOMPLETE and _same_files(before, ours) and set(ours) < set(before):
            return self._partial_copy(result, tmp, target.name)
        self._swap_in(tmp, target)
        self.this_run[target.name] = result.source
        return _replace(result, folder=target.name)

    def _swap_in(self, tmp: Path, target: Path) -> None:
        """Replace an output folder by a new one: the old one is moved aside first, so that OUT/<id> is always a
        whole folder, never a half-deleted one."""
        trash = self.out_dir / PARTIAL_DIR / f"old-{uuid.uuid4().hex}"
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash, ignore_errors=True)

    @staticmethod
    def _partial_copy(result: SubmissionResult, tmp: Path, folder: str) -> SubmissionResult:
        """A copy with fewer files than the one already in OUT: nothing is written, the row says where the
        complete one is."""
        shutil.rmtree(tmp, ignore_errors=True)
        return _replace(
            result,
            status=Status.DUPLICATE,
            reason_code=DUPLICATE,
            folder=folder,
            message=f"a partial copy of the submission already in {folder} with more of its files; nothing new "
            "written",
        )

    def _dup(self, result: SubmissionResult, folder: str) -> SubmissionResult:
        first = self.this_run.get(folder, "an earlier run")
        return _replace(
            result,
            status=Status.DUPLICATE,
            reason_code=DUPLICATE,
            folder=folder,
            message=f"the same submission (identical decrypted content) is already in {folder} "
            f"(from {first}); nothing new written",
        )


def _same_files(theirs: Mapping[str, str], ours: Mapping[str, str]) -> bool:
    """The files both copies have are identical (same names, same MD5)."""
    common = set(theirs) & set(ours)
    return bool(common) and all(theirs[name] == ours[name] for name in common)


def _replace(result: SubmissionResult, **changes: Any) -> SubmissionResult:
    values = {name: getattr(result, name) for name in SubmissionResult.__slots__}
    values.update(changes)
    return SubmissionResult(**values)
