"""The Python faces of the compiled tables: ``nat`` (V2N and NAT gateway translation),
``conntrack`` (security-group connection tracking), ``policy`` (routes, security groups and
network ACLs compiled to flat arrays)."""
