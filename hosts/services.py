"""Every change of state of hosts and containers, with its audit entry."""

from __future__ import annotations
