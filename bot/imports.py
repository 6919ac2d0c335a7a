"""``selfcare import customers|bills FILE.jsonl``: bulk loading with the events' schemas.

One JSON object per line: the ``data`` of ``customer.upserted`` (customers) or of
``bill.issued`` (bills). The file is streamed (a batch of lines at a time, read in a
thread), so memory stays flat whatever its size. Each batch is one transaction that also
stores the checkpoint (the last line committed and the byte offset after it), so an
import killed half-way resumes after its last commit when run again on the same file.
A bad line (not JSON, invalid, refused by the stored data) is reported with its line
number and skipped; the rest goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy.exc import IntegrityError

from core.integration_events import EventError, parse_bill_line, parse_customer_line
from core.ports import Clock
from core.services.integrations import Outcome, Rejected, upsert_bills, upsert_customers
from storage.integrations import ImportCheckpoint
from storage.uow import Database, SqlUnitOfWork

__all__ = ["ImportKind", "ImportReport", "file_key", "import_file"]

log = logging.getLogger(__name__)

ImportKind = Literal["customers", "bills"]
MAX_LINE_BYTES = 1024 * 1024
_KEY_PREFIX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImportReport:
    kind: ImportKind
    lines: int  # lines read in all (blank ones included), over every run
    applied: int
    rejected: int
    resumed_after: int  # lines a previous run had committed (0: a fresh start)


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    raw: bytes | None  # None: longer than MAX_LINE_BYTES
    end: int  # byte offset after the line


def file_key(path: Path) -> str:
    """Identifies a file's content for resuming: SHA-256 of its size and first MiB
    (blocking: call in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        digest.update(f"{size}:".encode())
        digest.update(file.read(_KEY_PREFIX_BYTES))
    return digest.hexdigest()


class _Reader:
    """Reads numbered lines from an offset; every method blocks (run them in a thread)."""

    def __init__(self, path: Path, offset: int, first_number: int) -> None:
        self._file: BinaryIO = path.open("rb")
        self._file.seek(offset)
        self._offset = offset
        self._number = first_number

    def size(self) -> int:
        return Path(self._file.name).stat().st_size

    def batch(self, count: int) -> list[_Line]:
        lines: list[_Line] = []
        while len(lines) < count:
            raw = self._file.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            self._offset += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                # Skip the rest of an overlong line without holding it in memory.
                while raw and not raw.endswith(b"\n"):
                    raw = self._file.readline(MAX_LINE_BYTES)
                    self._offset += len(raw)
                self._number += 1
                lines.append(_Line(self._number, None, self._offset))
                continue
            self._number += 1
            lines.append(_Line(self._number, raw, self._offset))
        return lines

    def close(self) -> None:
        self._file.close()


def _describe(error: EventError) -> str:
    return "; ".join(f"{e.path()}: {e.msg}" for e in error.errors)


async def import_file(
    db: Database,
    kind: ImportKind,
    path: Path,
    *,
    clock: Clock,
    batch_size: int = 1000,
    restart: bool = False,
    on_bad_line: Callable[[int, str], None] = lambda number, reason: None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    """Import ``path``; ``on_bad_line(line_number, reason)`` hears of every refused line,
    ``on_progress(bytes_done, bytes_total)`` after every batch. Raises OSError when the
    file cannot be read."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    key = await asyncio.to_thread(file_key, path)
    async with db.uow() as uow:
        if restart:
            await uow.import_checkpoints.clear(kind, key)
            await uow.commit()
            checkpoint = None
        else:
            checkpoint = await uow.import_checkpoints.get(kind, key)
    state = checkpoint or ImportCheckpoint(line_no=0, byte_offset=0, applied=0, rejected=0)
    resumed_after = state.line_no
    reader = await asyncio.to_thread(_Reader, path, state.byte_offset, state.line_no)
    try:
        total = await asyncio.to_thread(reader.size)
        on_progress(state.byte_offset, total)
        while lines := await asyncio.to_thread(reader.batch, batch_size):
            state = await _import_batch(db, kind, key, lines, state, clock, on_bad_line)
            on_progress(state.byte_offset, total)
    finally:
        await asyncio.to_thread(reader.close)
    async with db.uow() as uow:
        await uow.import_checkpoints.clear(kind, key)
        await uow.commit()
    return ImportReport(kind, state.line_no, state.applied, state.rejected, resumed_after)


def _parse(kind: ImportKind, lines: Sequence[_Line], bad: Callable[[int, str], None]) -> list[Any]:
    parse = parse_customer_line if kind == "customers" else parse_bill_line
    parsed: list[tuple[int, Any]] = []
    for line in lines:
        if line.raw is None:
            bad(line.number, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        if not line.raw.strip():
            continue
        try:
            parsed.append((line.number, parse(line.raw)))
        except EventError as exc:
            bad(line.number, "not valid JSON" if exc.malformed else _describe(exc))
    return parsed


async def _apply(
    uow: SqlUnitOfWork, kind: ImportKind, items: Sequence[Any], now: datetime
) -> list[Outcome]:
    if kind == "customers":
        return await upsert_customers(uow, items, now=now)
    return await upsert_bills(uow, items, now=now)


async def _import_batch(
    db: Database,
    kind: ImportKind,
    key: str,
    lines: Sequence[_Line],
    state: ImportCheckpoint,
    clock: Clock,
    on_bad_line: Callable[[int, str], None],
) -> ImportCheckpoint:
    bad: list[tuple[int, str]] = []
    parsed = _parse(kind, lines, lambda number, reason: bad.append((number, reason)))
    last = lines[-1]
    try:
        async with db.uow() as uow:
            outcomes = await _apply(uow, kind, [item for _, item in parsed], clock.now())
            refused = _refusals(parsed, outcomes)
            state = _advance(
                state, last, applied=len(parsed) - len(refused), bad=len(bad) + len(refused)
            )
            await uow.import_checkpoints.save(kind, key, state, clock.now())
            await uow.commit()
    except IntegrityError:
        # Someone else wrote the same rows meanwhile: redo the batch a line at a time, so
        # only a line that clashes is refused.
        log.warning("import batch clashed with a concurrent change; retrying line by line")
        refused = []
        for number, item in parsed:
            try:
                async with db.uow() as uow:
                    refused += _refusals(
                        [(number, item)], await _apply(uow, kind, [item], clock.now())
                    )
                    await uow.commit()
            except IntegrityError:
                refused.append((number, "clashed with a concurrent change: import it again"))
        state = _advance(
            state, last, applied=len(parsed) - len(refused), bad=len(bad) + len(refused)
        )
        async with db.uow() as uow:
            await uow.import_checkpoints.save(kind, key, state, clock.now())
            await uow.commit()
    for number, reason in sorted([*bad, *refused]):
        on_bad_line(number, reason)
    return state


def _refusals(
    parsed: Sequence[tuple[int, Any]], outcomes: Sequence[Outcome]
) -> list[tuple[int, str]]:
    refused = []
    for (number, _), outcome in zip(parsed, outcomes, strict=True):
        if isinstance(outcome, Rejected):
            path = ".".join(str(part) for part in outcome.loc)
            refused.append((number, f"{path}: {outcome.message}" if path else outcome.message))
    return refused


def _advance(state: ImportCheckpoint, last: _Line, *, applied: int, bad: int) -> ImportCheckpoint:
    return ImportCheckpoint(
        line_no=last.number,
        byte_offset=last.end,
        applied=state.applied + applied,
        rejected=state.rejected + bad,
    )
