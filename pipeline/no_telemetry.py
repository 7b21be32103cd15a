"""A build talks to nothing but this machine and the devices it was given: the switches that stop
the libraries it calls from reporting home, set in every process of a build.

- onnxruntime (1.29 and later, official wheels, also on Linux) sends usage events to Microsoft's
  1DS collector, retried for about 15 s at process exit, unless ORT_DISABLE_TELEMETRY=1 is set
  before its environment is created (microsoft/onnxruntime#27379); the decision is latched for
  the process. Seen here: onnxruntime 1.32.0, DNS queries for mobile.events.data.microsoft.com.
Ray's usage statistics and probes are switched off where deploy starts Ray (executors/ray.py).
"""
from __future__ import annotations

import os

ENVIRONMENT = {"ORT_DISABLE_TELEMETRY": "1"}


def apply() -> None:
    """Set the switches in this process (its children inherit them)."""
    os.environ.update(ENVIRONMENT)
