"""Health: the checks behind `/health`, `/health/live` and the status page's banner."""

from amosync.health.checks import run_checks
from amosync.health.model import FAIL, OK, WARN, Check
from amosync.health.probe import HealthProbe

__all__ = ["FAIL", "OK", "WARN", "Check", "HealthProbe", "run_checks"]
