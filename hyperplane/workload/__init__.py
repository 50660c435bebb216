"""Load tests of the modelled system: a workload (per function, invocations over time and the
connections each opens) walked through a network at virtual time, and what it runs into —
Hyperplane ENIs and their overflow ENIs, subnet addresses, NAT gateway ports per destination,
idle timeouts (docs/load.md)."""

from hyperplane.workload.model import Burst, Connection, FunctionLoad, Workload, WorkloadError
from hyperplane.workload.report import Hit, LoadReport
from hyperplane.workload.run import load_test
from hyperplane.workload.sweep import SweepResult, sweep

__all__ = ["Burst", "Connection", "FunctionLoad", "Workload", "WorkloadError", "Hit", "LoadReport", "load_test",
           "SweepResult", "sweep"]
