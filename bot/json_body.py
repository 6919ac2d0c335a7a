"""Decoding a JSON request body the same way everywhere it is read.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for arrays or objects nested
deeper than the interpreter's stack allows (``[[[[…`` in a 256 KiB body): each route would
have to remember it or answer 500. :func:`loads` turns it into the ``ValueError`` that
undecodable bytes and invalid JSON already are.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(raw: bytes | str) -> Any:
    """The JSON value of ``raw``; ``ValueError`` when it is not UTF-8 JSON or is nested too
    deep to decode."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
