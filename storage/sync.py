"""Daily S3 sync: upload closed days of the lake with SHA-256 checksums, write each day's manifest last,
and verify what is on S3 against it.

Layout on S3 mirrors the lake below ``s3://BUCKET/PREFIX``: ``<dataset>/exchange=<id>/date=<D>/<file>``,
so ``ticktape query --lake s3://BUCKET/PREFIX`` reads it the same way. The manifest of a day is
``_ticktape/manifests/date=<D>.json``: every file of the day (key, size, rows, SHA-256 and the S3
checksum), written only after every file is uploaded and verified. Its content is deterministic, so an
unchanged day gives an identical manifest.

Rules:

- Every object is uploaded with ``ChecksumSHA256`` (S3 verifies it on receipt and stores it); objects
  above :data:`MULTIPART_THRESHOLD` go up in parts, each with its own SHA-256, and S3 keeps the
  checksum of the part checksums (computed the same way here).
- An object that exists is never overwritten: equal checksum and size means "already there", anything
  else is a conflict, reported and left alone. Uploads are conditional (``If-None-Match: *``), so a
  concurrent writer cannot be overwritten either.
- Every run verifies the remote objects of the days it covers against their manifest (HEAD with the
  stored checksum, plus a listing for objects that do not belong) and fails naming each mismatch. With
  ``verify_content`` the objects are downloaded and hashed as well. The report counts what was
  verified and how.
- Repair is limited to what can be proven: an object of a synced day that is *missing* on S3 while
  the local file still has the manifest's size and SHA-256 is uploaded again (conditionally, with
  its checksum) and counted as repaired. Objects that exist with other content are never touched.
- A day whose local files changed after it was synced (a different manifest) is a conflict: nothing is
  uploaded for it (readers over S3 would otherwise see rows twice).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from schemas import DATASETS

from .catalog import split_s3_url
from .compact import Partition, data_files, lake_lock, select_days, uncommitted_files, utc_today
from .lake import STATE_DIR

log = logging.getLogger(__name__)

MANIFEST_DIR = f"{STATE_DIR}/manifests"
MANIFEST_FORMAT = 1
#: Files above this size are uploaded in parts of :data:`PART_SIZE` bytes.
MULTIPART_THRESHOLD = 256 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024
_READ_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a day's manifest."""

    key: str  # relative to the lake root / S3 prefix
    size: int
    rows: int
    sha256: str  # hex digest of the whole file
    checksum: str  # the ChecksumSHA256 S3 stores: base64 of the digest, or of the part digests + "-N"
    part_size: int  # 0 for a single-request upload

    def to_json(self) -> dict[str, Any]:
        """The manifest form of the entry."""
        return {
            "key": self.key,
            "size": self.size,
            "rows": self.rows,
            "sha256": self.sha256,
            "checksum_sha256": self.checksum,
            "part_size": self.part_size,
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> FileEntry:
        """Parses a manifest entry."""
        return FileEntry(
            str(obj["key"]),
            int(obj["size"]),
            int(obj["rows"]),
            str(obj["sha256"]),
            str(obj["checksum_sha256"]),
            int(obj.get("part_size", 0)),
        )


@dataclass(slots=True)
class DayReport:
    """What one day's sync did."""

    day: date
    files: int = 0
    uploaded: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    present: int = 0
    #: objects missing on S3 uploaded again from a local file that matches the manifest
    repaired: list[str] = field(default_factory=list)
    #: objects checked against the manifest (size and stored SHA-256), and those also downloaded and hashed
    verified: int = 0
    content_verified: int = 0
    manifest_written: bool = False
    problems: list[str] = field(default_factory=list)  # mismatches and conflicts, naming the objects
    skipped: str = ""  # why the day was not synced (not ready)

    @property
    def ok(self) -> bool:
        """True when the day is on S3, complete and verified."""
        return not self.problems and not self.skipped


def manifest_key(day: date) -> str:
    """Manifest key of a day, relative to the prefix."""
    return f"{MANIFEST_DIR}/date={day.isoformat()}.json"


def file_checksums(path: Path, multipart_threshold: int, part_size: int) -> tuple[str, str, int, int]:
    """``(sha256 hex, S3 ChecksumSHA256, size, part_size)`` of a file, read once."""
    whole = hashlib.sha256()
    parts: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            whole.update(chunk)
            size += len(chunk)
            view = memoryview(chunk)
            while view:
                take = min(len(view), part_size - in_part)
                part.update(view[:take])
                in_part += take
                view = view[take:]
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    if size <= multipart_threshold:
        return whole.hexdigest(), base64.b64encode(whole.digest()).decode(), size, 0
    if in_part:
        parts.append(part.digest())
    composite = base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
    return whole.hexdigest(), f"{composite}-{len(parts)}", size, part_size


def _same_checksum(expected: str, found: str | None) -> bool:
    # Real S3 reports a multipart object's checksum as "<base64>-<parts>"; some S3-compatible stores
    # omit the suffix. The digest part must match; the part count too when both carry one.
    if not found:
        return False
    e_sum, _, e_parts = expected.partition("-")
    f_sum, _, f_parts = found.partition("-")
    return e_sum == f_sum and (not e_parts or not f_parts or e_parts == f_parts)


class S3Lake:
    """The S3 side of a sync: one bucket and prefix, through boto3 (standard credential chain)."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = split_s3_url(url)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 8}),
            )
        self.s3 = client

    def key(self, relative: str) -> str:
        """The object key of a lake-relative path."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, relative: str) -> str:
        """``s3://bucket/key`` of a lake-relative path (for messages)."""
        return f"s3://{self.bucket}/{self.key(relative)}"

    def head(self, relative: str) -> dict[str, Any] | None:
        """HEAD with the stored checksum, or None when the object does not exist."""
        from botocore.exceptions import ClientError

        try:
            resp: dict[str, Any] = self.s3.head_object(
                Bucket=self.bucket, Key=self.key(relative), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return resp

    def get_json(self, relative: str) -> dict[str, Any] | None:
        """A JSON object, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            resp = self.s3.get_object(Bucket=self.bucket, Key=self.key(relative))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        data: dict[str, Any] = json.loads(resp["Body"].read())
        return data

    def sha256_of(self, relative: str) -> str | None:
        """Downloads an object and returns its SHA-256 (hex); None when its bytes contradict the
        checksum S3 stored for it (botocore checks that while downloading)."""
        from botocore.exceptions import FlexibleChecksumError

        resp = self.s3.get_object(Bucket=self.bucket, Key=self.key(relative), ChecksumMode="ENABLED")
        h = hashlib.sha256()
        try:
            for chunk in resp["Body"].iter_chunks(_READ_CHUNK):
                h.update(chunk)
        except FlexibleChecksumError:
            return None
        return h.hexdigest()

    def list_keys(self, relative_prefix: str, delimiter: str | None = None) -> list[str]:
        """Lake-relative keys (or common prefixes with ``delimiter``) below a lake-relative prefix."""
        paginator = self.s3.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.key(relative_prefix)}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = []
        for page in paginator.paginate(**kwargs):
            if delimiter:
                out += [p["Prefix"][strip:] for p in page.get("CommonPrefixes", [])]
            else:
                out += [o["Key"][strip:] for o in page.get("Contents", [])]
        return out

    def put_new(
        self, relative: str, path: Path | None, body: bytes | None, entry_checksum: str, part_size: int
    ) -> bool:
        """Uploads an object that must not exist yet; False when someone else created it first."""
        from botocore.exceptions import ClientError

        key = self.key(relative)
        try:
            if part_size:
                assert path is not None
                self._multipart(key, path, part_size)
            elif path is not None:
                with open(path, "rb") as fh:
                    self.s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=fh,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=entry_checksum,
                        IfNoneMatch="*",
                    )
            else:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body or b"",
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=entry_checksum,
                    IfNoneMatch="*",
                    ContentType="application/json",
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def _multipart(self, key: str, path: Path, part_size: int) -> None:
        upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256")
        upload_id = upload["UploadId"]
        try:
            parts = []
            with open(path, "rb") as fh:
                number = 1
                while chunk := fh.read(part_size):
                    checksum = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                    resp = self.s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                    )
                    parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})
                    number += 1
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise


def local_manifest(
    parts: Iterable[Partition],
    lake: Path,
    day: date,
    multipart_threshold: int = MULTIPART_THRESHOLD,
    part_size: int = PART_SIZE,
) -> tuple[dict[str, Any], list[tuple[FileEntry, Path]]]:
    """The manifest of a day's local files, and each entry with its path."""
    entries: list[tuple[FileEntry, Path]] = []
    for part in parts:
        for path in data_files(part.path):
            sha, checksum, size, psize = file_checksums(path, multipart_threshold, part_size)
            rows = pq.ParquetFile(path).metadata.num_rows
            key = path.relative_to(lake).as_posix()
            entries.append((FileEntry(key, size, rows, sha, checksum, psize), path))
    entries.sort(key=lambda e: e[0].key)
    manifest = {
        "format": MANIFEST_FORMAT,
        "date": day.isoformat(),
        "files": [e.to_json() for e, _ in entries],
        "total_rows": sum(e.rows for e, _ in entries),
        "total_bytes": sum(e.size for e, _ in entries),
    }
    return manifest, entries


def verify_day(
    remote: S3Lake,
    day: date,
    manifest: dict[str, Any],
    verify_content: bool = False,
    report: DayReport | None = None,
    missing: list[str] | None = None,
) -> list[str]:
    """Checks every object of a day against its manifest; returns the mismatches (empty when all match).

    ``report`` counts the objects verified; ``missing`` receives the keys absent from S3.
    """
    problems = []
    entries = [FileEntry.from_json(f) for f in manifest.get("files", [])]
    listed = {e.key for e in entries}
    for e in entries:
        head = remote.head(e.key)
        if head is None:
            problems.append(f"missing: {remote.uri(e.key)}")
            if missing is not None:
                missing.append(e.key)
            continue
        if report is not None:
            report.verified += 1
            report.content_verified += verify_content
        size = int(head.get("ContentLength", -1))
        found = head.get("ChecksumSHA256")
        if size != e.size:
            problems.append(f"size mismatch: {remote.uri(e.key)} is {size} bytes, manifest says {e.size}")
        elif not _same_checksum(e.checksum, found):
            problems.append(
                f"checksum mismatch: {remote.uri(e.key)} has SHA-256 {found or 'none'}, manifest says {e.checksum}"
            )
        elif verify_content and remote.sha256_of(e.key) != e.sha256:
            problems.append(f"content mismatch: {remote.uri(e.key)} does not hash to the manifest's SHA-256")
    # Objects of the day that the manifest does not list would be read by every query over S3.
    for extra in sorted(set(_remote_day_keys(remote, day)) - listed):
        problems.append(f"unexpected object (not in the manifest): {remote.uri(extra)}")
    return problems


def _remote_day_keys(remote: S3Lake, day: date) -> list[str]:
    keys = []
    for dataset in DATASETS:
        for ex_prefix in remote.list_keys(f"{dataset}/", delimiter="/"):
            if ex_prefix.rstrip("/").rsplit("/", 1)[-1].startswith("exchange="):
                keys += [
                    k
                    for k in remote.list_keys(f"{ex_prefix}date={day.isoformat()}/")
                    if k.endswith(".parquet")
                ]
    return keys


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def sync_day(
    lake: Path,
    remote: S3Lake,
    day: date,
    parts: list[Partition],
    verify_content: bool = False,
    progress: Callable[[int], None] | None = None,
    multipart_threshold: int | None = None,
    part_size: int | None = None,
) -> DayReport:
    """Uploads one closed day (files first, manifest last) and verifies it."""
    multipart_threshold = MULTIPART_THRESHOLD if multipart_threshold is None else multipart_threshold
    part_size = PART_SIZE if part_size is None else part_size
    report = DayReport(day)
    not_ready = []
    for part in parts:
        busy = [p.name for p in part.path.iterdir() if p.name.startswith(".")]
        busy += uncommitted_files(lake, data_files(part.path))
        if busy:
            not_ready.append(f"{part.relative}: {busy[:3]}")
    if not_ready:
        report.skipped = "unfinished sink files (sink running or crashed?): " + "; ".join(not_ready)
        return report
    manifest, entries = local_manifest(parts, lake, day, multipart_threshold, part_size)
    report.files = len(entries)
    remote_manifest = remote.get_json(manifest_key(day))
    if remote_manifest is not None:
        if remote_manifest != manifest:
            report.problems.append(_describe_change(remote, day, remote_manifest, manifest))
        missing: list[str] = []
        first = DayReport(day)
        problems = verify_day(remote, day, remote_manifest, verify_content, first, missing)
        if missing:
            report.repaired = _repair(remote, remote_manifest, entries, missing, progress)
        if report.repaired:
            problems = verify_day(remote, day, remote_manifest, verify_content, report)
        else:
            report.verified, report.content_verified = first.verified, first.content_verified
        report.problems += problems
        report.present = len(entries) - len(report.repaired)
        return report
    for entry, path in entries:
        head = remote.head(entry.key)
        if head is None:
            if remote.put_new(entry.key, path, None, entry.checksum, entry.part_size):
                report.uploaded.append(entry.key)
                report.uploaded_bytes += entry.size
                if progress is not None:
                    progress(entry.size)
                continue
            head = remote.head(entry.key)  # created concurrently: judge what is there now
        if (
            head is not None
            and int(head.get("ContentLength", -1)) == entry.size
            and _same_checksum(entry.checksum, head.get("ChecksumSHA256"))
        ):
            report.present += 1
            if progress is not None:
                progress(entry.size)
        else:
            found = None if head is None else head.get("ChecksumSHA256")
            report.problems.append(
                f"conflict: {remote.uri(entry.key)} exists with different content "
                f"(SHA-256 {found or 'none'}, local {entry.checksum}); not overwritten"
            )
    if report.problems:
        return report
    report.problems += verify_day(remote, day, manifest, verify_content, report)
    if report.problems:
        return report
    body = _manifest_bytes(manifest)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    if remote.put_new(manifest_key(day), None, body, checksum, 0):
        report.manifest_written = True
    else:
        theirs = remote.get_json(manifest_key(day))
        if theirs != manifest:
            report.problems.append(
                f"conflict: {remote.uri(manifest_key(day))} was written concurrently with other content"
            )
    return report


def _repair(
    remote: S3Lake,
    manifest: dict[str, Any],
    entries: list[tuple[FileEntry, Path]],
    missing: list[str],
    progress: Callable[[int], None] | None,
) -> list[str]:
    """Uploads again the missing objects whose local file is exactly the manifest's; returns their keys."""
    local = {e.key: (e, path) for e, path in entries}
    promised = {f["key"]: FileEntry.from_json(f) for f in manifest.get("files", [])}
    repaired = []
    for key in missing:
        entry, path = local.get(key, (None, None))
        if entry is None or path is None or entry != promised.get(key):
            continue  # no local copy, or not the bytes the manifest promises: nothing to prove
        if remote.put_new(key, path, None, entry.checksum, entry.part_size):
            repaired.append(key)
            log.warning("repaired %s: it was missing on S3; uploaded the local file again", remote.uri(key))
            if progress is not None:
                progress(entry.size)
    return repaired


def _describe_change(remote: S3Lake, day: date, old: dict[str, Any], new: dict[str, Any]) -> str:
    old_keys = {f["key"]: f for f in old.get("files", [])}
    new_keys = {f["key"]: f for f in new.get("files", [])}
    added = sorted(set(new_keys) - set(old_keys))
    removed = sorted(set(old_keys) - set(new_keys))
    changed = sorted(k for k in set(old_keys) & set(new_keys) if old_keys[k] != new_keys[k])
    return (
        f"conflict: {day.isoformat()} changed locally since it was synced to {remote.uri(manifest_key(day))} "
        f"(new: {added[:5]}, gone: {removed[:5]}, changed: {changed[:5]}); nothing uploaded for this day"
    )


def plan_days(lake: Path, day: date | None, closed_before: date | None) -> dict[date, list[Partition]]:
    """Closed days of the lake (or just ``day``) with their partitions; ``ValueError`` for an open day."""
    parts, open_days = select_days(lake, day, closed_before)
    if day is not None and open_days:
        limit = closed_before or utc_today()
        raise ValueError(f"{day.isoformat()} is not closed yet (days before {limit.isoformat()} are)")
    days: dict[date, list[Partition]] = {}
    for part in parts:
        days.setdefault(part.day, []).append(part)
    if day is not None and day not in days:
        raise ValueError(f"no data for {day.isoformat()} in {lake}")
    return dict(sorted(days.items()))


def sync_lake(
    lake: Path,
    remote: S3Lake,
    day: date | None = None,
    closed_before: date | None = None,
    verify_content: bool = False,
    progress: Callable[[int], None] | None = None,
    on_day: Callable[[DayReport], None] | None = None,
) -> list[DayReport]:
    """Syncs every closed day (or ``day``); returns a report per day."""
    if not lake.is_dir():
        raise FileNotFoundError(f"lake directory not found: {lake}")
    reports = []
    # A compaction swapping a day's files while we hash and upload them would make files vanish.
    with lake_lock(lake, wait=True):
        for d, parts in plan_days(lake, day, closed_before).items():
            report = sync_day(lake, remote, d, parts, verify_content, progress)
            reports.append(report)
            if on_day is not None:
                on_day(report)
    return reports


def total_bytes(lake: Path, day: date | None, closed_before: date | None) -> int:
    """Bytes of the files a sync would consider (for a progress bar)."""
    return sum(
        p.stat().st_size
        for parts in plan_days(lake, day, closed_before).values()
        for part in parts
        for p in data_files(part.path)
    )
