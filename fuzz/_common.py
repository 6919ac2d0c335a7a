"""What every harness shares: instrumenting the target's imports, the corpus and crash
folders under ``var/fuzz/<harness>/``, seeding an empty corpus, starting libFuzzer.

A harness's ``test_one_input`` and ``seeds`` need no atheris: the test suite imports the
harnesses and replays their seeds (tests/fuzz/test_fuzz_harnesses.py), so that a harness
that no longer fits the code it fuzzes fails in CI, not on the next ``make fuzz``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "fuzz"


@contextlib.contextmanager
def instrumented(module_name: str, include: list[str]) -> Iterator[None]:
    """Instrument the modules imported inside the block (coverage for libFuzzer) when the
    harness runs as ``python -m fuzz.<name>``; a plain import (the tests) leaves them be."""
    if module_name != "__main__":
        yield
        return
    import atheris

    # atheris names every module it instruments on stderr: hundreds of lines of noise.
    with contextlib.redirect_stderr(io.StringIO()), atheris.instrument_imports(include=include):
        yield


def run(name: str, test_one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Fuzz ``test_one_input`` with libFuzzer; the command line's own options
    (``-max_total_time=60``, ``-runs=1000``, a crash file to replay…) are passed on.

    The corpus is ``var/fuzz/<name>/corpus`` (seeded when empty), crashes are written to
    ``var/fuzz/<name>/crashes/``."""
    import atheris

    corpus = VAR / name / "corpus"
    crashes = VAR / name / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for seed in seeds:
            (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a name
    options = [arg for arg in sys.argv[1:] if arg.startswith("-")]
    inputs = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    argv = [sys.argv[0], *options, f"-artifact_prefix={crashes}/", *(inputs or [str(corpus)])]
    print(f"fuzz/{name}.py: corpus {corpus}, crashes {crashes}/", flush=True)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
