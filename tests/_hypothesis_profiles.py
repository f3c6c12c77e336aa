"""Hypothesis profiles of the property tests (``tests/test_properties.py``).

- ``ci`` (default): few examples per property, derandomised (the same examples every run,
  so CI never flakes on a new random example); the whole file stays around a minute.
- ``slow``: 10 000 examples per property (every op and augment), fresh random examples.
  Run it with::

      MIXKIT_HYPOTHESIS_PROFILE=slow python -m pytest tests/test_properties.py -m slow \
          --hypothesis-show-statistics

The profiles are registered under private names and applied per test (``SETTINGS``), not
loaded globally, so other test files keep their own hypothesis settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("MIXKIT_HYPOTHESIS_PROFILE", "ci")
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "mixkit-ci",
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "mixkit-slow",
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=_SUPPRESS,
)
if PROFILE not in ("ci", "slow"):
    raise ValueError(f"MIXKIT_HYPOTHESIS_PROFILE must be 'ci' or 'slow', got {PROFILE!r}")
SETTINGS = settings.get_profile(f"mixkit-{PROFILE}")
SLOW = PROFILE == "slow"
