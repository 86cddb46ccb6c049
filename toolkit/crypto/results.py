"""What a decrypt run produces: one log row per submission found, the run's totals, and the names of what
it writes into OUT (the log, the record of each output folder, the work folders, conflict copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from toolkit.errors import Issue, Location, Severity

LOG_NAME = "decrypt-log.csv"
LOG_COLUMNS = ("instance_id", "form_id", "version", "source", "status", "reason_code", "message", "folder")
STAMP_XATTR = "user.migkit.decrypt"  # what an output folder holds, as an extended attribute (Linux)
STAMP_NAME = ".migkit-decrypt.json"  # the same as a dot-file where there are no extended attributes
PARTIAL_DIR = ".migkit-partial"  # work folders inside OUT, renamed into place when complete
CONFLICT_SEPARATOR = "__"  # second submission with a known instanceID but other content: OUT/<id>__2


class Status(StrEnum):
    OK = "ok"
    SIGNATURE_INVALID = "signature_invalid"
    INCOMPLETE = "incomplete"
    PLAINTEXT = "plaintext"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    FAILED = "failed"


GOOD_STATUSES = frozenset({Status.OK, Status.PLAINTEXT, Status.DUPLICATE})


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """One row of the decrypt log: what happened to one submission found in the inputs."""

    instance_id: str
    form_id: str
    version: str
    source: str
    status: Status
    reason_code: str
    message: str
    folder: str = ""  # output folder name inside OUT (see instance_folder), "" when nothing was written

    def row(self) -> dict[str, str]:
        """The log columns, as written to decrypt-log.csv and printed by --json."""
        return {name: str(getattr(self, name)) for name in LOG_COLUMNS}

    @property
    def good(self) -> bool:
        return self.status in GOOD_STATUSES

    def to_issue(self) -> Issue:
        """This row as a problem (for a submission that is not ok, plaintext or a duplicate): the reason code
        (topic `decrypt`), the message, and where: the source file and the instance."""
        return Issue(
            self.reason_code or f"decrypt.{self.status}",
            Severity.ERROR,
            self.message,
            Location(file=self.source, instance=self.instance_id or None),
            topic="decrypt",
        )


@dataclass(frozen=True)
class DecryptResult:
    """The outcome of a decrypt run: counts by status, the log path and (unless not kept) every row."""

    out_dir: Path
    log_path: Path
    counts: dict[str, int]
    submissions: tuple[SubmissionResult, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when every submission is ok, plaintext or a duplicate."""
        return all(self.counts.get(str(s), 0) == 0 for s in Status if s not in GOOD_STATUSES)
