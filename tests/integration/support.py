"""Helpers for integration tests: run ``selfcare`` in a subprocess, check stored ciphertexts."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.demo import demo_customers
from storage import tables as t
from storage.crypto import FieldCipher
from storage.rotation import ROW_ID_COLUMN

CLI_TIMEOUT = 120


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """Every line either stream printed (progress lines split on carriage returns)."""
        text = (self.stdout + "\n" + self.stderr).replace("\r", "\n")
        return [line for line in text.splitlines() if line.strip()]


async def run_cli(
    env: Mapping[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> CliResult:
    """Run ``python -m bot ARGS`` to completion (killed after CLI_TIMEOUT seconds)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(None if stdin is None else stdin.encode()), CLI_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


async def decrypt_every_value(engine: AsyncEngine, cipher: FieldCipher) -> dict[str, int]:
    """Decrypt every stored ciphertext with ``cipher`` (raises DecryptionError on the first
    that fails); returns how many values each table holds."""
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, columns in t.ENCRYPTED_COLUMNS.items():
            table = t.metadata.tables[name]
            id_col = table.c[ROW_ID_COLUMN.get(name, "id")]
            rows = await conn.execute(select(id_col, *(table.c[c] for c in columns)))
            counts[name] = 0
            for row_id, *values in rows:
                for column, value in zip(columns, values, strict=True):
                    if value is not None:
                        cipher.decrypt_bytes(
                            bytes(value),
                            table=name,
                            column=t.aad_column(column),
                            row_id=str(row_id),
                        )
                        counts[name] += 1
    return counts


_TITLE = re.compile("^(นางสาว|นาย|นาง)")


def demo_personal_values() -> dict[str, str]:
    """Every personal value of every demo customer, in each form a leak might take,
    keyed by a description that names no value (so a failure message is safe to print)."""
    values: dict[str, str] = {}
    for i, (customer, accounts) in enumerate(demo_customers()):
        titled_given, family = customer.name.rsplit(" ", 1)
        p = customer.phone
        forms = {
            "name": customer.name,
            "given name": _TITLE.sub("", titled_given),
            "family name": family,
            "address": customer.address,
            "phone": p,
            "dashed phone": f"{p[:3]}-{p[3:6]}-{p[6:]}",
            "+66 phone": "+66" + p[1:],
            "email": customer.email or "",
            "national id": customer.national_id or "",
        }
        for n, account in enumerate(accounts):
            forms[f"number {n}"] = account.number
        for what, value in forms.items():
            assert len(value) >= 4, f"customer {i}: {what} too short to search for"
            values[f"customer {i}: {what}"] = value
    return values


def find_values(blob: bytes, values: Mapping[str, str]) -> list[str]:
    """The descriptions of the ``values`` found in ``blob``, as UTF-8 or UTF-16-LE."""
    return [
        f"{what} ({encoding})"
        for what, value in values.items()
        for encoding in ("utf-8", "utf-16-le")
        if value.encode(encoding) in blob
    ]
