"""Each invoice's XML as a file, byte for byte, staged for Airbyte's file transfer.

Brazilian rules make a seller keep the XML file of every NF-e and event for years, and the
signature inside covers the file's bytes: the decoded text of the `xml` column does not replace
it. When files are asked for (`files_asked_for`), every invoice_documents record carries a
`file_reference` to its invoice's file, written here under the staging folder that the platform
shares with the destination (AIRBYTE_STAGING_DIRECTORY); the destination copies it next to the
record's metadata and deletes the staged copy once taken.

How a file is staged, and why:
- Its bytes are the ZIP entry (or the XML body under the other reading of the model) exactly as
  Amazon's document holds them: no decoding, no byte-order mark removed.
- It is written to a temporary name in its own folder, then renamed (`os.replace`): a record
  is emitted only after the rename, so it never points at a file a killed process left half
  written. A temporary file is never referenced; one left by a killed sync is removed by the
  next sync that stages into the same folder.
- Each sync writes under a folder of its own (`sp-invoices-<random>`), and its relative paths
  are unique within it: no two records share a staged file, which the destination deletes once
  taken (the CDK's file-based sources stage each file under a random folder for that reason).
- Names come only from checked parts (four-digit years, months, 44-digit access keys, event
  codes, an invoice ID reduced to letters, digits, `_`, `-` and inner dots), never from a ZIP
  entry's name, so no file can land outside the staging folder; and the folders of a path are
  created one by one, each refused if it is a link (planted by someone else) rather than a
  folder.
- Files are created as the CDK's uploaders create them (0666 less the umask): the destination may
  read them as another user.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from airbyte_cdk.models import (
    AirbyteRecordMessageFileReference,
    ConfiguredAirbyteStream,
    FailureType,
)
from airbyte_cdk.sources.utils.files_directory import get_files_directory
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.config import Config, ConfigError

STAGING_VARIABLE = "AIRBYTE_STAGING_DIRECTORY"  # set by the platform, as the CDK reads it
FILE_TRANSFER_VARIABLE = "USE_FILE_TRANSFER"  # set by the platform with delivery_method
RUN_PREFIX = "sp-invoices-"  # the folder of one sync under the staging folder
LOCK_NAME = ".sp-invoices.lock"  # held while its sync runs: a free lock is a finished sync's
PARTIAL = ".partial"  # the suffix of a file still being written
UNNAMED = "by-invoice-id"  # files whose access key or date cannot be read, by invoice ID
MAX_ID_CHARACTERS = 100  # of an invoice ID in a file name (a name may hold 255 bytes)

_ACCESS_KEY = re.compile(r"[0-9]{44}")
_EVENT_TYPE = re.compile(r"[0-9]{6}")
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])-[0-9]{2}")  # the date of an NF-e date-time
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def files_asked_for(
    config: Config, configured: ConfiguredAirbyteStream, environ: Mapping[str, str]
) -> str | None:
    """Why invoice_documents delivers files in this sync, or None when it does not.

    Airbyte 1.7 and later ask with the configured stream's `include_files`; older platforms,
    and any platform for a connector outside its registry, with the config's delivery_method
    Copy Raw Files, for which they also set USE_FILE_TRANSFER=true in the job's environment.
    Either asks, whatever the other says: the platform sets both from one choice of the user.
    """
    if configured.include_files:
        return "the catalog's include_files"
    if config.copy_raw_files:
        return "delivery_method Copy Raw Files"
    if environ.get(FILE_TRANSFER_VARIABLE, "").strip().lower() == "true":
        return f"{FILE_TRANSFER_VARIABLE}=true"
    return None


def relative_path(invoice_id: str, header: Mapping[str, Any] | None) -> str:
    """Where an invoice's file goes, relative to the staging folder, as an auditor looks for it.

    An NF-e: `<year>/<month>/<access key>-procNFe.xml`, the month of its issue (dhEmi, as written
    in Brazil's time); `-NFe.xml` for one without the authorization protocol. An event:
    `<year>/<month>/<access key>-<tpEvento>-<nSeqEvento, 2 digits>-procEventoNFe.xml`, the month
    of the event (dhEvento); `-evento.xml` without its registration. Any other file (not parsed,
    not an NF-e, a key that is not 44 digits, no date): `by-invoice-id/<invoice ID>.xml`.
    """
    named = _name_of(header) if header else None
    if named is not None:
        key, at, name = named
        month = _MONTH.match(at) if isinstance(at, str) else None
        if month and isinstance(key, str) and _ACCESS_KEY.fullmatch(key):
            return f"{month.group(1)}/{month.group(2)}/{name}"
    return f"{UNNAMED}/{safe_name(invoice_id)}.xml"


def _name_of(header: Mapping[str, Any]) -> tuple[Any, Any, str] | None:
    """(access key, date-time of the month, file name) of an NF-e or an event, unchecked but
    for an event's type and sequence; None for anything else."""
    if header.get("documentType") == "nfe":
        key = header.get("accessKey")
        kind = "procNFe" if header.get("protocolStatusCode") is not None else "NFe"
        return key, header.get("issuedAt"), f"{key}-{kind}.xml"
    if header.get("documentType") != "event":
        return None
    key, event, sequence = (header.get(c) for c in ("eventAccessKey", "eventType", "eventSequence"))
    if not (isinstance(event, str) and _EVENT_TYPE.fullmatch(event)):
        return None
    if type(sequence) is not int or not 0 < sequence < 100:
        return None
    kind = "procEventoNFe" if header.get("eventStatusCode") is not None else "evento"
    return key, header.get("eventAt"), f"{key}-{event}-{sequence:02d}-{kind}.xml"


def safe_name(invoice_id: str) -> str:
    """An invoice ID as one harmless file name: letters, digits, `_`, `-` and dots not at the
    start (no `..`, no hidden file), other characters as `_`; a long one cut and told apart
    from others by a digest of the whole ID."""
    name = _UNSAFE.sub("_", invoice_id)
    name = "_" + name[1:] if name.startswith(".") else name
    if len(name) > MAX_ID_CHARACTERS:
        digest = hashlib.sha256(invoice_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[: MAX_ID_CHARACTERS - 17]}-{digest}"
    return name or "_"


def staging_root(
    environ: Mapping[str, str], default: Callable[[], str] = get_files_directory
) -> Path:
    """The staging folder: AIRBYTE_STAGING_DIRECTORY as the platform names it (used as it is:
    a folder it forgot to mount is an error, not a reason to write elsewhere), else the CDK's
    choice, /staging/files if it exists, or a local folder it creates, for runs outside Airbyte."""
    named = environ.get(STAGING_VARIABLE, "").strip()
    if named:
        return Path(named)
    root = Path(default())
    with contextlib.suppress(OSError):  # FileStager names the folder if it is still missing
        root.mkdir(parents=True, exist_ok=True)
    return root


class FileStager:
    """Stages the invoice files of one sync, each under a unique relative path."""

    def __init__(self, root: Path, why: str, logger: Any) -> None:
        """Create this sync's folder under `root` (ConfigError naming the folder when it is
        missing or not writable) and remove what killed syncs left half written there."""
        self.root = root
        self.why = why
        self._taken: set[str] = set()
        self._made: set[Path] = set()  # the folders created in this sync's folder
        if not root.exists():
            self._refuse("does not exist")
        if not root.is_dir():
            self._refuse("is not a folder")
        # Absolute: the destination reads the path, from a working directory of its own.
        folder = root.absolute() / f"{RUN_PREFIX}{uuid.uuid4().hex}"
        try:
            folder.mkdir()
            self._lock = os.open(folder / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as error:
            self._refuse(f"is not writable ({error.strerror or error})")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new folder: always free
        # Freed when the stager goes, or with the process: then the sync has ended.
        self._release = weakref.finalize(self, os.close, self._lock)
        self.folder = folder
        removed = remove_partial_files(folder.parent, keep=folder)
        if removed:
            logger.info(
                f"Removed {removed} partial file(s) that a killed sync left in {root}; no record "
                "points at them."
            )
        logger.info(
            f"invoice_documents: invoice files asked for ({why}): each invoice's XML is staged "
            f"byte for byte under {folder}, named by issue month and access key."
        )

    def _refuse(self, problem: str) -> NoReturn:
        raise ConfigError(
            f"Invoice files were asked for ({self.why}), but the staging folder {self.root} "
            f"({STAGING_VARIABLE}) {problem}: the files are written there for the destination "
            "to take. Mount it writable for the connector, set AIRBYTE_STAGING_DIRECTORY to "
            "such a folder, or deliver records only (delivery_method Replicate Records, and "
            "files not included in the connection)."
        )

    def stage(
        self, invoice_id: str, data: bytes, header: Mapping[str, Any] | None
    ) -> AirbyteRecordMessageFileReference:
        """Write one invoice's bytes under its name (made unique in this sync) and return the
        reference its record carries. The file is complete before this returns."""
        relative = self._unique(relative_path(invoice_id, header), invoice_id)
        target = self.folder / relative
        try:
            self._make_folders(relative)
            _write_whole(target, data)
        except OSError as error:
            raise AirbyteTracedException(
                message=f"Could not stage the file of invoice {invoice_id} as {target}: "
                f"{error.strerror or error}. The document is read again by the next sync; "
                "check the free space and permissions of the staging folder.",
                failure_type=FailureType.system_error,
            ) from error
        return AirbyteRecordMessageFileReference(
            staging_file_url=str(target),
            source_file_relative_path=relative,
            file_size_bytes=len(data),
        )

    def _make_folders(self, relative: str) -> None:
        """Create the folders of a relative path in this sync's folder, one at a time, each
        a plain folder (a link planted there would lead outside the staging folder)."""
        folder = self.folder
        for part in relative.split("/")[:-1]:
            folder = folder / part
            if folder in self._made:
                continue
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
            if folder.is_symlink() or not folder.is_dir():
                raise OSError(
                    errno.EEXIST,
                    f"{folder} is a link or not a folder (no file may land outside the staging "
                    "folder)",
                )
            self._made.add(folder)

    def _unique(self, relative: str, invoice_id: str) -> str:
        """`relative`, or, when this sync already staged a file there (two invoices holding
        the same NF-e, one invoice read twice), the name with the invoice ID, then a number."""
        stem = relative.removesuffix(".xml")
        candidates = [relative]
        if not stem.endswith("/" + safe_name(invoice_id)):
            candidates.append(f"{stem}-{safe_name(invoice_id)}.xml")
        base = candidates[-1].removesuffix(".xml")
        number = 2
        while True:
            for candidate in candidates:
                if candidate not in self._taken:
                    self._taken.add(candidate)
                    return candidate
            candidates = [f"{base}-{number}.xml"]
            number += 1

    def close(self) -> None:
        """Let the next sync know this one ended (its lock freed); staged files stay for the
        destination."""
        self._release()


def _write_whole(target: Path, data: bytes) -> None:
    """Write to `<name>.partial` beside the target, then rename: the target is whole or absent."""
    partial = target.with_name(target.name + PARTIAL)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def remove_partial_files(root: Path, keep: Path) -> int:
    """Remove the half-written files of ended syncs' folders under `root` (a folder whose lock
    no process holds), never a whole file: the destination may not have taken it yet. Returns
    how many were removed."""
    removed = 0
    for folder in root.glob(f"{RUN_PREFIX}*"):
        if folder == keep or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            lock = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # not a folder of this connector's, or not ours to read
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue  # its sync still runs
        try:
            for partial in folder.rglob(f"*{PARTIAL}"):
                if partial.is_file() and not partial.is_symlink():
                    partial.unlink(missing_ok=True)
                    removed += 1
        finally:
            os.close(lock)
    return removed
