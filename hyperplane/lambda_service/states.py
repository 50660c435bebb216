"""The words of a function's lifecycle: states, update statuses, reason codes, ENI statuses.

AWS's own words (API_FunctionConfiguration ``State``, ``LastUpdateStatus``,
``StateReasonCode``); plain strings, so that a configuration reads as AWS shows it.
"""

from __future__ import annotations

__all__ = [
    "PENDING", "ACTIVE", "INACTIVE", "FAILED", "IN_PROGRESS", "SUCCESSFUL",
    "CREATING", "IDLE", "RESTORING", "ENI_LIMIT_EXCEEDED", "INSUFFICIENT_ROLE_PERMISSIONS",
    "SUBNET_OUT_OF_IP_ADDRESSES", "INVALID_SUBNET", "INVALID_SECURITY_GROUP", "REASON_CODES",
    "ENI_PENDING", "ENI_AVAILABLE", "ENI_DELETING", "ENI_DELETED", "ENI_ORPHANED",
]

PENDING, ACTIVE, INACTIVE, FAILED = "Pending", "Active", "Inactive", "Failed"
IN_PROGRESS, SUCCESSFUL = "InProgress", "Successful"  # LastUpdateStatus (and FAILED)

CREATING = "Creating"
IDLE = "Idle"
RESTORING = "Restoring"
ENI_LIMIT_EXCEEDED = "EniLimitExceeded"
INSUFFICIENT_ROLE_PERMISSIONS = "InsufficientRolePermissions"
SUBNET_OUT_OF_IP_ADDRESSES = "SubnetOutOfIPAddresses"
INVALID_SUBNET = "InvalidSubnet"
INVALID_SECURITY_GROUP = "InvalidSecurityGroup"
REASON_CODES = frozenset({
    CREATING, IDLE, RESTORING, ENI_LIMIT_EXCEEDED, INSUFFICIENT_ROLE_PERMISSIONS,
    SUBNET_OUT_OF_IP_ADDRESSES, INVALID_SUBNET, INVALID_SECURITY_GROUP,
})

# Hyperplane ENI statuses.
ENI_PENDING = "pending"  # being created: not usable before ready_at
ENI_AVAILABLE = "available"  # in use by at least one function or version
ENI_DELETING = "deleting"  # no user left: deleted at delete_at unless a user comes back first
ENI_DELETED = "deleted"  # gone (no longer listed); its address is free again
ENI_ORPHANED = "orphaned"  # its deletion could not run (role gone): stays until deleted by hand
