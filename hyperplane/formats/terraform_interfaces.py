"""Terraform's holders of network interfaces as ENIs of our topology, and Lambda functions.

- ``aws_network_interface``: an ENI as written (``private_ips``: the first is the primary);
- ``aws_instance``: its primary ENI (``primary_network_interface_id`` or one synthesized from the
  address), or the ``aws_network_interface`` it attaches at device index 0; a public IP when
  ``associate_public_ip_address`` (or the subnet's ``map_public_ip_on_launch``) says so;
- ``aws_eip`` / ``aws_eip_association`` with an instance or ENI: that ENI's public IP;
- ``aws_db_instance``: one ENI (kind ``rds``) in the first subnet of its ``aws_db_subnet_group``;
- ``aws_elasticache_cluster`` / ``_replication_group``: one ENI (kind ``elasticache``) per cache
  node, spread over the subnet group's subnets in order; ``aws_elasticache_serverless_cache``:
  one per subnet;
- ``aws_lambda_function``: a function with its ``vpc_config`` (IAM is not read: the role is the
  topology format's default, with ``AWSLambdaVPCAccessExecutionRole``).

An address the document does not fix is left to the topology reader, which gives the lowest
free address of the subnet, as AWS does.
"""

from __future__ import annotations

from typing import Any

from hyperplane.formats.terraform_document import Instance
from hyperplane.formats.terraform_resources import Translator, synthesized_id

__all__ = ["read_interfaces"]


def read_interfaces(t: Translator) -> None:
    tf = t.tf
    attached: dict[str, str] = {}  # ENI id -> instance id
    for inst in tf.of_type("aws_instance"):
        for i, block in enumerate(tf.known(inst, "network_interface") or ()):
            if isinstance(block, dict) and str(block.get("device_index", 0)) == "0":
                eni = t.find_id(inst, ("network_interface", i, "network_interface_id"), ("eni",))
                if eni:
                    attached[eni] = inst.id
                    t.instance_eni[inst.id] = inst.extra["eni"] = eni
    for attachment in tf.of_type("aws_network_interface_attachment"):
        eni_id = t.id_of(attachment, ("network_interface_id",), ("eni",))
        attached.setdefault(eni_id, t.id_of(attachment, ("instance_id",), ("i",)))
    for interface in tf.of_type("aws_network_interface"):
        _interface(t, interface, attached.get(interface.id))
    for inst in tf.of_type("aws_instance"):
        if inst.extra["eni"] not in attached:
            _instance(t, inst)
    _public_ips(t)
    _databases(t)
    _functions(t)


def _groups(t: Translator, inst: Instance, attribute: str) -> list[str] | None:
    groups = t.ids_of(inst, (attribute,), ("sg",)) if t.tf.is_set(inst, attribute) else []
    return groups or None


def _eni(t: Translator, inst: Instance, item: dict) -> dict:
    item = {k: v for k, v in item.items() if v is not None}
    item.setdefault("description", inst.address)
    return t.add("network_interfaces", inst, item)


def _interface(t: Translator, eni: Instance, instance_id: str | None) -> None:
    tf = t.tf
    ips = [ip for ip in (tf.known(eni, "private_ip_list") or tf.known(eni, "private_ips") or ()) if isinstance(ip, str)]
    primary = tf.known(eni, "private_ip") or (ips[0] if ips else None)
    check = tf.known(eni, "source_dest_check")
    _eni(t, eni, {"id": eni.id, "subnet_id": t.id_of(eni, ("subnet_id",), ("subnet",)), "private_ip": primary,
                  "secondary_private_ips": [ip for ip in ips if ip != primary] or None,
                  "security_group_ids": _groups(t, eni, "security_groups"),
                  "kind": "instance" if instance_id else "interface", "instance_id": instance_id,
                  "source_dest_check": check if isinstance(check, bool) else None})


def _instance(t: Translator, inst: Instance) -> None:
    tf = t.tf
    if not tf.is_set(inst, "subnet_id"):
        tf.report.note(f"{inst.address}: no subnet_id (an instance in a default VPC) is not read")
        return
    subnet = t.id_of(inst, ("subnet_id",), ("subnet",))
    public = tf.known(inst, "public_ip")
    wants_public = tf.known(inst, "associate_public_ip_address")
    if wants_public is None:
        wants_public = next((s.extra.get("public") for s in tf.of_type("aws_subnet") if s.id == subnet), False)
    secondary = [ip for ip in tf.known(inst, "secondary_private_ips") or () if isinstance(ip, str)]
    check = tf.known(inst, "source_dest_check")
    _eni(t, inst, {"id": inst.extra["eni"], "subnet_id": subnet, "private_ip": tf.known(inst, "private_ip") or None,
                   "secondary_private_ips": secondary or None,
                   "security_group_ids": _groups(t, inst, "vpc_security_group_ids"),
                   "public_ip": t.public_ip(public) if public or wants_public else None,
                   "kind": "instance", "instance_id": inst.id,
                   "source_dest_check": check if isinstance(check, bool) else None})


def _public_ips(t: Translator) -> None:
    """Elastic IPs associated with an instance or an ENI become that ENI's public IP."""
    tf = t.tf
    pairs: list[tuple[Instance, Instance | None]] = [(eip, None) for eip in tf.of_type("aws_eip")
                                                     if not eip.extra.get("used")]
    pairs += [(assoc, None) for assoc in tf.of_type("aws_eip_association")]
    for inst, _ in pairs:
        eni = None
        for attribute in ("network_interface", "network_interface_id", "instance", "instance_id"):
            if tf.is_set(inst, attribute):
                eni = t.find_id(inst, (attribute,), ("eni",))
                break
        if eni is None or eni not in t.by_id:
            continue
        public = tf.known(inst, "public_ip")
        if inst.type == "aws_eip_association":
            allocation = t.find_id(inst, ("allocation_id",), ("eipalloc",))
            eip = next((e for e in tf.of_type("aws_eip") if e.id == allocation), None)
            public = public or (tf.known(eip, "public_ip") if eip is not None else None)
            if eip is not None:
                eip.extra["used"] = True
        elif inst.extra.get("used"):
            continue
        t.by_id[eni]["public_ip"] = t.public_ip(public)


def _subnet_group(t: Translator, inst: Instance, attribute: str, group_type: str) -> list[str]:
    """The subnets of the subnet group an RDS / ElastiCache resource names (by reference or name)."""
    tf = t.tf
    refs, _ = tf.references(inst, attribute)
    groups = [r.target for r in refs if r.target.type == group_type]
    if not groups:
        name = tf.known(inst, attribute)
        groups = [g for g in tf.of_type(group_type) if tf.known(g, "name") == name and name]
    if not groups:
        return []
    return t.ids_of(groups[0], ("subnet_ids",), ("subnet",))


def _databases(t: Translator) -> None:
    tf = t.tf
    for db in tf.of_type("aws_db_instance"):
        subnets = _subnet_group(t, db, "db_subnet_group_name", "aws_db_subnet_group")
        if not subnets:
            tf.report.note(f"{db.address}: no DB subnet group of this document (a default VPC) is not read")
            continue
        _eni(t, db, {"id": synthesized_id("eni", db.address), "subnet_id": subnets[0], "kind": "rds",
                     "security_group_ids": _groups(t, db, "vpc_security_group_ids")})
    for cache in tf.of_type("aws_elasticache_cluster", "aws_elasticache_replication_group",
                            "aws_elasticache_serverless_cache"):
        if cache.type == "aws_elasticache_cluster" and tf.is_set(cache, "replication_group_id"):
            continue  # a member of a replication group: its nodes are the group's
        if cache.type == "aws_elasticache_serverless_cache":
            subnets = t.ids_of(cache, ("subnet_ids",), ("subnet",))
            nodes = len(subnets)
        else:
            subnets = _subnet_group(t, cache, "subnet_group_name", "aws_elasticache_subnet_group")
            nodes = _cache_nodes(tf.known(cache, "num_cache_nodes"), tf.known(cache, "num_cache_clusters"),
                                 tf.known(cache, "number_cache_clusters"), tf.known(cache, "num_node_groups"),
                                 tf.known(cache, "replicas_per_node_group"))
        if not subnets:
            tf.report.note(f"{cache.address}: no cache subnet group of this document (a default VPC) is not read")
            continue
        groups = _groups(t, cache, "security_group_ids")
        for n in range(nodes):
            _eni(t, cache, {"id": synthesized_id("eni", f"{cache.address}#{n}"), "subnet_id": subnets[n % len(subnets)],
                            "kind": "elasticache", "security_group_ids": groups,
                            "description": f"{cache.address} node {n + 1}"})


def _cache_nodes(*counts: Any) -> int:
    nodes, clusters, old_clusters, shards, replicas = (c if isinstance(c, int) else None for c in counts)
    if nodes:
        return nodes
    if clusters or old_clusters:
        return int(clusters or old_clusters or 1)
    if shards:
        return shards * ((replicas or 0) + 1)
    return 1


def _functions(t: Translator) -> None:
    tf = t.tf
    for fn in tf.of_type("aws_lambda_function"):
        name = tf.known(fn, "function_name")
        item: dict[str, Any] = {"name": name if isinstance(name, str) and name else fn.name,
                                "description": fn.address}
        blocks = tf.known(fn, "vpc_config") or []
        if blocks:
            path = ("vpc_config", 0)
            subnets = t.ids_of(fn, (*path, "subnet_ids"), ("subnet",))
            groups = t.ids_of(fn, (*path, "security_group_ids"), ("sg",))
            if subnets or groups:
                item["vpc_config"] = {"subnet_ids": subnets, "security_group_ids": groups}
        t.add("functions", fn, item)
