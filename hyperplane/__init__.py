"""hyperplane: a packet-level emulator of the VPC networking AWS Lambda functions use."""

from hyperplane.records import PACKET

__all__ = ["PACKET"]
__version__ = "0.1.0"
