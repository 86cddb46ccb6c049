"""Benchmark: `migkit decrypt --workers W` on N household-sized encrypted submissions, next to the RSA-bound limit
measured in the same run.

Each submission is a Collect tablet instance folder: a 20 KB submission.xml, an audit.csv and, in one submission out
of three, a 50 KB photo. Decrypting one needs two RSA private-key operations (the AES key and the signature), so W
processes cannot go faster than (RSA private-key operations per second on W processes) / 2. That limit is timed with
`cryptography` on this machine just before and just after the decrypt run (the larger value is used: the machine is
shared), and the decrypt rate is printed as a fraction of it. Target: at least 0.5 on 2 cores for N = 20,000. Peak
memory is the largest resident set of the decrypt process and its workers.

Decryption also creates a folder and two or three files per submission. On a rested disk that costs about 0.1 ms per
submission; for minutes after many files were deleted, the same work can take 1 to 3 ms. On the build VM the cause
is ext4 without a journal: the search for each new inode (a folder, a file) walks past every free inode of its block
group that was deleted in the last minute, or six minutes while its inode table is not yet written back
(`recently_deleted` in the kernel's ialloc.c; perf puts over half of the kernel time of creating folders there). So
each run also times creating the same folders and files under the same OUT with no decryption (the file-system
limit), after the decrypt run, and prints the rate against both limits together; with --repeat on such a disk, the
runs after the first meet the previous run's deletions, and so does any benchmark that deletes a large earlier
output just before it starts. `--out-root /dev/shm` (memory-backed) leaves the disk out and compares the decryptor
with RSA alone. The CPU time is printed split into user time (migkit and its libraries, RSA included) and kernel
time (mostly creating files).

The corpus is generated once with `toolkit.crypto.encrypt_submission` and cached in bench/out/ (gitignored).

    .venv/bin/python bench/decrypt.py [--n 20000] [--workers 2] [--out-root DIR] [--repeat K] [--flat-check]
"""

# ruff: noqa: PTH102, PTH104, PTH118 - the file-system reference makes the same system calls decrypt makes
from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolkit import crypto  # noqa: E402

OUT = REPO / "bench" / "out"
KEY_PATH = OUT / "decrypt-key.pem"
PHOTO_BYTES = 50 * 1024
XML_BYTES = 20 * 1024


def household_xml(i: int) -> bytes:
    """About 20 KB: a household roster with one repeat per member, as the migration questionnaire produces."""
    members = []
    member = 0
    while sum(map(len, members)) < XML_BYTES - 600:
        members.append(
            f"<member><pid>{member + 1}</pid><name>Member {member + 1} of household {i}</name>"
            f"<sex>{1 + member % 2}</sex><age>{(i + 7 * member) % 90}</age>"
            f"<relation>{member % 12 + 1}</relation>"
            f"<abroad>{(i + member) % 2}</abroad><country>{(i * 31 + member) % 40}</country>"
            f"<remit>{(i * 13 + member * 7) % 5000}</remit><remit_currency>KZT</remit_currency>"
            f"<work_sector>{(i + member) % 17}</work_sector><notes>Жауап {i}-{member}, ответ записан</notes>"
            "</member>"
        )
        member += 1
    body = "".join(members)
    return (
        f'<?xml version=\'1.0\' ?><data id="ncamig_household" version="2026112701">'
        f"<hh_id>{i}</hh_id><region>{i % 14}</region>{body}"
        f"<meta><instanceID>uuid:bench-{i:08d}</instanceID></meta></data>"
    ).encode()


def audit_csv(i: int) -> bytes:
    rows = ["event,node,start,end"] + [
        f"question,/data/member/q{j},{1700000000000 + i * 1000 + j},{1700000000500 + i * 1000 + j}"
        for j in range(60)
    ]
    return ("\n".join(rows) + "\n").encode()


def _make_one(args: tuple[int, str, bytes]) -> None:
    i, corpus, public_der = args
    public = serialization.load_der_public_key(public_der)
    name = f"ncamig_household_{i:08d}"
    folder = Path(corpus) / "instances" / name
    media = [("audit.csv", audit_csv(i))]
    if i % 3 == 0:
        photo = (i.to_bytes(4, "big") * (PHOTO_BYTES // 4 + 1))[:PHOTO_BYTES]
        media.insert(0, (f"{1700000000000 + i}.jpg", photo))
    crypto.encrypt_submission(
        household_xml(i),
        public_key=public,
        form_id="ncamig_household",
        version="2026112701",
        instance_id=f"uuid:bench-{i:08d}",
        out_dir=folder,
        media=media,
        manifest_name=f"{name}.xml",
    )


def corpus_for(n: int, workers: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    if not KEY_PATH.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        KEY_PATH.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    corpus = OUT / f"decrypt-corpus-{n}"
    if (corpus / "COMPLETE").exists():
        return corpus
    shutil.rmtree(corpus, ignore_errors=True)
    key = crypto.load_private_key(KEY_PATH).private_key
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(
            _make_one, ((i, str(corpus), public_der) for i in range(n)), chunksize=64
        ):
            pass
    (corpus / "COMPLETE").write_text(str(n))
    print(f"generated {n} submissions in {time.perf_counter() - started:.1f} s -> {corpus}", file=sys.stderr)
    return corpus


def _rsa_ops(args: tuple[bytes, bytes, float]) -> tuple[int, float, float]:
    der, block, seconds = args
    key = serialization.load_der_private_key(der, password=None)
    ops = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        key.decrypt(block, crypto.OAEP_SHA256)  # the operation decrypt does twice per submission
        ops += 1
    return ops, elapsed, time.process_time() - cpu_started


def rsa_limit(workers: int, seconds: float = 4.0) -> tuple[float, float]:
    """Submissions/s if decryption did nothing but its two RSA private-key operations, on `workers`
    processes; and the CPU seconds those two operations take."""
    key = crypto.load_private_key(KEY_PATH).private_key
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    block = base64.b64decode(crypto.rsa_wrap(key.public_key(), os.urandom(32)))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_rsa_ops, [(der, block, seconds)] * workers)
    ops_per_second = sum(ops / elapsed for ops, elapsed, _ in results)
    cpu_per_op = sum(cpu for *_, cpu in results) / sum(ops for ops, *_ in results)
    return ops_per_second / 2, 2 * cpu_per_op


def _write_layouts(args: tuple[str, int, int, int]) -> tuple[float, float]:
    """Create the output of submissions start, start+step, ... < n without decrypting anything: a work folder,
    the files decrypt writes (same names and sizes), the record attribute, the rename into place."""
    out, start, step, n = args
    staging = os.path.join(out, crypto.PARTIAL_DIR)
    xml, audit, photo = b"x" * XML_BYTES, audit_csv(0), b"p" * PHOTO_BYTES
    record = b"{" + b"r" * 600 + b"}"
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(start, n, step):
        work = os.path.join(staging, f"{os.getpid()}-{i}")
        os.mkdir(work)
        files = [("submission.xml", xml), ("audit.csv", audit)]
        if i % 3 == 0:
            files.append((f"{1700000000000 + i}.jpg", photo))
        for name, data in files:
            fd = os.open(os.path.join(work, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)
        with contextlib.suppress(OSError):
            os.setxattr(work, crypto.STAMP_XATTR, record)
        os.rename(work, os.path.join(out, f"bench-{i:08d}"))
    return time.perf_counter() - started, time.process_time() - cpu_started


def filesystem_limit(n: int, workers: int, out: Path) -> tuple[float, float]:
    """Submissions/s if decryption did nothing but create its output (folders and files) in `out` (left for the
    caller to delete), on `workers` processes; and the CPU seconds that takes per submission. On a disk this is a
    second physical limit: some file systems spend more time placing a new folder and its files than RSA takes."""
    (out / crypto.PARTIAL_DIR).mkdir(parents=True)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_write_layouts, [(str(out), w, workers, n) for w in range(workers)])
    elapsed = time.perf_counter() - started
    return n / elapsed, sum(cpu for _, cpu in results) / n


def run_decrypt(corpus: Path, workers: int, out: Path) -> tuple[float, Counter[str], float, float, float]:
    """Run `migkit decrypt` into `out` (left for the caller to delete) as a child process: (seconds, statuses,
    peak RSS in MB, CPU seconds, of which in the kernel). wait4 gives the resource use of that child and the workers
    it waited for, and of nothing else."""
    command = [sys.executable, "-m", "toolkit", "decrypt", str(corpus), "--key", str(KEY_PATH)]
    command += ["--out", str(out), "--workers", str(workers)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    _, _, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = 0  # reaped by wait4
    with (out / crypto.LOG_NAME).open(encoding="utf-8", newline="") as handle:
        statuses = Counter(row["status"] for row in csv.DictReader(handle))
    return elapsed, statuses, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="submissions (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="decrypt processes (default 2)")
    parser.add_argument("--flat-check", action="store_true", help="also run N/10 to compare peak memory")
    parser.add_argument(
        "--out-root",
        type=Path,
        default=OUT,
        help="where OUT is made (default bench/out; e.g. /dev/shm to leave out the disk's cost "
        "of creating files)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs (each between two limit measurements); the median is kept"
    )
    args = parser.parse_args()
    corpus = corpus_for(args.n, args.workers)
    ratios, cpu_ratios, peaks = [], [], []
    # A run's outputs are deleted after both of its measurements. Deleting 100,000 files leaves some file systems
    # (ext4 mounted with `discard`) slow to create new ones for minutes, so on such a disk the runs after the first
    # measure that too; keeping them all instead fills a memory-backed --out-root.
    scratch = args.out_root / "decrypt-bench-outputs"
    shutil.rmtree(scratch, ignore_errors=True)
    for run in range(1, args.repeat + 1):
        limit_before, rsa_cpu_before = rsa_limit(args.workers)
        elapsed, statuses, peak_mb, cpu, kernel_cpu = run_decrypt(corpus, args.workers, scratch / "decrypt")
        if statuses != Counter({"ok": args.n}):
            # A failed submission costs one RSA operation and writes nothing: a rate with failures is not a rate.
            sys.exit(f"decrypt did not decrypt every submission ({dict(statuses)}); delete {OUT} and run again")
        fs_rate, fs_cpu = filesystem_limit(args.n, args.workers, scratch / "files")
        shutil.rmtree(scratch, ignore_errors=True)
        limit_after, rsa_cpu_after = rsa_limit(args.workers)
        limit = max(limit_before, limit_after)  # the larger limit: the smaller ratio
        rsa_cpu = min(rsa_cpu_before, rsa_cpu_after)
        rate = args.n / elapsed
        ratios.append(rate / limit)
        cpu_ratios.append(rsa_cpu / (cpu / args.n))
        peaks.append(peak_mb)
        print(
            f"run {run}: {args.n} submissions, --workers {args.workers}, OUT under {args.out_root}, "
            f"{elapsed:.1f} s, statuses {dict(statuses)}"
        )
        print(f"  decrypt rate        {rate:8.1f} submissions/s")
        print(
            f"  RSA-bound limit     {limit:8.1f} submissions/s  (2 private-key ops per submission on "
            f"{args.workers} processes; {limit_before:.1f} before, {limit_after:.1f} after the run)"
        )
        print(f"  ratio               {rate / limit:8.2f}  (target >= 0.50)")
        both = 1 / (1 / limit + 1 / fs_rate)
        print(
            f"  file-system limit   {fs_rate:8.1f} submissions/s  (creating the same folders and files under "
            f"{args.out_root} and nothing else; {fs_cpu * 1e3:.3f} ms CPU per submission)"
        )
        print(
            f"  physical limit      {both:8.1f} submissions/s  (RSA and file creation one after the other); "
            f"ratio {rate / both:.2f}"
        )
        print(f"  peak RSS            {peak_mb:8.1f} MB  (largest of the decrypt process and its workers)")
        # On a shared machine other users' load moves both wall-clock figures; CPU time moves much less: this
        # is the share of the run's CPU time (main process, workers, start-up) that the RSA operations need.
        print(
            f"  CPU per submission  {cpu / args.n * 1e3:8.3f} ms  (RSA part {rsa_cpu * 1e3:.3f} ms; CPU "
            f"ratio {rsa_cpu / (cpu / args.n):.2f}, the ratio if all of it ran in parallel on the cores)"
        )
        # What is neither RSA nor the kernel is migkit's own per-submission work (parsing, AES, hashing, records,
        # the main process's commits and log); the kernel part is mostly creating folders and files.
        print(
            f"  of which            {(cpu - kernel_cpu) / args.n * 1e3:8.3f} ms in migkit and libraries, "
            f"{kernel_cpu / args.n * 1e3:.3f} ms in the kernel (file system); not RSA: "
            f"{(cpu - kernel_cpu) / args.n * 1e3 - rsa_cpu * 1e3:.3f} ms + {kernel_cpu / args.n * 1e3:.3f} ms"
        )
    if args.repeat > 1:
        print(
            f"median of {args.repeat} runs: ratio {statistics.median(ratios):.2f}, CPU ratio "
            f"{statistics.median(cpu_ratios):.2f}, peak RSS {max(peaks):.1f} MB"
        )
    if args.flat_check:
        small = corpus_for(max(args.n // 10, 1), args.workers)
        _, _, small_peak, _, _ = run_decrypt(small, args.workers, scratch / "decrypt-small")
        print(f"peak RSS at N/10    {small_peak:8.1f} MB  (flat in N if close to the figure above)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
