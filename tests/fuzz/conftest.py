"""Hypothesis profiles for the fuzz tests, chosen with ``HYPOTHESIS_PROFILE``.

- ``ci`` (the default under ``CI=true``): 100 examples a fast test (the slow ones ask for
  fewer with :func:`tests.fuzz.strategies.scaled`), derandomized so that a CI failure
  reproduces on any machine, no deadline (2 shared cores) and no example database;
- ``fuzz`` (``make fuzz``): ``FUZZ_EXAMPLES`` examples a fast test (5000: 50 times as
  many), random, failures saved in ``.hypothesis/`` and replayed first next time;
- ``dev`` (the default elsewhere): Hypothesis's defaults without the deadline.

Loading a profile sets Hypothesis's defaults for the whole pytest run; ``ci`` keeps the
default number of examples, so other tests' Hypothesis runs only become reproducible.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None)

_default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))
