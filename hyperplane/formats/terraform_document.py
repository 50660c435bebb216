"""The instances of a ``terraform show -json`` document and the resolution of their attributes.

``TerraformDocument`` walks a plan (``planned_values``, ``resource_changes``' ``after_unknown``,
``configuration``) or a state (``values``), child modules included, into :class:`Instance` s;
``known`` gives an attribute the document knows, ``references`` the instances its
configuration expression names (the same index for ``count.index`` / ``each.key``, every
instance for a whole resource, module outputs followed into the child module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from hyperplane.errors import TopologyError
from hyperplane.formats._iac import NotEmulated, synthesized_id

__all__ = ["SUPPORTED_FORMAT_VERSIONS", "Instance", "Ref", "TerraformDocument", "instance_id", "is_terraform_document"]

#: The ``format_version`` values read: 0.1 (Terraform 0.12 to 1.0), 0.2 (1.0.x), 1.x (1.1 on).
SUPPORTED_FORMAT_VERSIONS = "0.1, 0.2 and 1.x"
_MISSING = object()


def is_terraform_document(data: object) -> bool:
    """Whether ``data`` (a parsed JSON document) is the output of ``terraform show -json``."""
    return (isinstance(data, dict) and "format_version" in data
            and any(key in data for key in ("planned_values", "values", "resource_changes", "prior_state")))



@dataclass
class Instance:
    """One resource instance of the document."""

    address: str                     # module.vpc.aws_subnet.private[0]
    module: str                      # module.vpc ("" for the root module)
    type: str                        # aws_subnet
    name: str                        # private
    index: int | str | None          # count index, for_each key, or None
    values: dict[str, Any]
    unknown: Any                     # after_unknown (True / nested dicts and lists), {} for a state
    config: dict[str, Any]           # configuration expressions of the resource block
    mode: str = "managed"
    id: str = ""                     # the id it has in the topology (real or synthesized)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The resource address without the index (``module.vpc.aws_subnet.private``)."""
        return _strip_index(self.address)


@dataclass(frozen=True)
class Ref:
    """A value that names another instance (an expression reference), and which attribute."""

    target: Instance
    attribute: str


_INDEX = re.compile(r"\[[^\]]*\]$")
_REF = re.compile(r'^(data\.)?([a-z][a-z0-9_]*)\.([A-Za-z0-9_-]+)(\[(?:\d+|"[^"]*")\])?(?:\.([A-Za-z0-9_]+))?')
_MODULE_KEYS = re.compile(r"\[[^\]]*\]")


def _strip_index(address: str) -> str:
    return _INDEX.sub("", address)


def _module_path(address: str) -> str:
    """``module.a["x"].module.b`` -> ``module.a.module.b`` (configuration has no instance keys)."""
    return _MODULE_KEYS.sub("", address)


class TerraformDocument:
    """The instances of a plan or state and the means to resolve their attributes."""

    def __init__(self, document: Any, file: str | None, region: str | None) -> None:
        self.file = file
        if not isinstance(document, dict) or not is_terraform_document(document):
            self.fail("", "not a terraform show -json document (no format_version with planned_values or values)")
        version = document["format_version"]
        if not isinstance(version, str) or not re.fullmatch(r"0\.[12]|1\.\d+", version):
            self.fail("format_version", f"format_version {version!r} is not supported (read: {SUPPORTED_FORMAT_VERSIONS})")
        self.version = version
        self.is_plan = "planned_values" in document
        self.report = NotEmulated(file or "terraform")
        self.instances: list[Instance] = []
        self.config_modules: dict[str, dict] = {}
        self.region_hint = region
        config = self.mapping(document.get("configuration", {}), "configuration")
        self._walk_configuration(self.mapping(config.get("root_module", {}), "configuration.root_module"), "")
        unknowns: dict[str, Any] = {}
        for i, change in enumerate(self.sequence(document.get("resource_changes", []), "resource_changes")):
            change = self.mapping(change, f"resource_changes[{i}]")
            body = self.mapping(change.get("change", {}), f"resource_changes[{i}].change")
            unknowns[str(change.get("address"))] = body.get("after_unknown", {})
        if self.is_plan:
            root = self.mapping(self.mapping(document["planned_values"], "planned_values").get("root_module", {}),
                                "planned_values.root_module")
            self._walk_values(root, "planned_values.root_module", unknowns, modes=("managed",))
            prior = document.get("prior_state")
            if isinstance(prior, dict) and isinstance(prior.get("values"), dict):  # data sources read at plan time
                self._walk_values(self.mapping(prior["values"].get("root_module", {}), "prior_state.values.root_module"),
                                  "prior_state.values.root_module", {}, modes=("data",))
        else:
            values = self.mapping(document["values"] if document.get("values") is not None else {}, "values")
            self._walk_values(self.mapping(values.get("root_module", {}), "values.root_module"), "values.root_module",
                              {}, modes=("managed", "data"))
        self.provider_region = self._provider_region(config)
        self.by_key: dict[tuple[str, str], list[Instance]] = {}
        for inst in self.instances:
            self.by_key.setdefault((inst.module, _strip_index(inst.address)[len(inst.module) + 1 if inst.module else 0:]),
                                   []).append(inst)

    # -- errors and typed access -----------------------------------------------------------

    def fail(self, where: str, problem: str) -> Any:
        raise TopologyError(self.file, where, problem)

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, not {_kind(value)}")
        return value

    def sequence(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            self.fail(where, f"expected an array, not {_kind(value)}")
        return value

    # -- walking ---------------------------------------------------------------------------

    def _walk_configuration(self, module: dict, path: str) -> None:
        self.config_modules[path] = module
        for name, call in (module.get("module_calls") or {}).items():
            if isinstance(call, dict) and isinstance(call.get("module"), dict):
                self._walk_configuration(call["module"], f"{path}.module.{name}" if path else f"module.{name}")

    def _config_of(self, module: str, key: str) -> dict:
        conf = self.config_modules.get(_module_path(module), {})
        for block in conf.get("resources") or ():
            if isinstance(block, dict) and block.get("address") == key:
                return block.get("expressions") or {}
        return {}

    def _walk_values(self, module: dict, where: str, unknowns: dict, modes: tuple[str, ...]) -> None:
        address = module.get("address", "")
        for i, res in enumerate(self.sequence(module.get("resources", []), f"{where}.resources")):
            at = f"{where}.resources[{i}]"
            res = self.mapping(res, at)
            for key in ("address", "type", "name"):
                if not isinstance(res.get(key), str):
                    self.fail(f"{at}.{key}", f"expected a string, not {_kind(res.get(key))}")
            if res.get("mode", "managed") not in modes:
                continue
            mode = res.get("mode", "managed")
            values = res.get("values") if res.get("values") is not None else {}
            values = self.mapping(values, f"{res['address']}.values")
            local = _strip_index(res["address"])[len(address) + 1 if address else 0:]
            self.instances.append(Instance(
                address=res["address"], module=address, type=res["type"], name=res["name"], index=res.get("index"),
                values=values, unknown=unknowns.get(res["address"], {}), config=self._config_of(address, local),
                mode=mode))
        for i, child in enumerate(self.sequence(module.get("child_modules", []), f"{where}.child_modules")):
            self._walk_values(self.mapping(child, f"{where}.child_modules[{i}]"), f"{where}.child_modules[{i}]",
                              unknowns, modes)

    def _provider_region(self, config: dict) -> str | None:
        provider = (config.get("provider_config") or {}).get("aws")
        if isinstance(provider, dict):
            region = (provider.get("expressions") or {}).get("region")
            if isinstance(region, dict) and isinstance(region.get("constant_value"), str):
                return region["constant_value"]
        return None

    def of_type(self, *types: str) -> Iterator[Instance]:
        return (inst for inst in self.instances if inst.type in types and inst.mode == "managed")

    # -- attributes --------------------------------------------------------------------------

    def known(self, inst: Instance, *path: Any) -> Any:
        """The attribute at ``path`` when the document knows it, else ``None``."""
        value: Any = inst.values
        unknown: Any = inst.unknown
        for part in path:
            value = _get(value, part)
            unknown = _get(unknown, part)
        return None if unknown is True or value is _MISSING else value

    def expression(self, inst: Instance, *path: Any) -> Any:
        """The configuration expression of the attribute at ``path`` (nested blocks included)."""
        node: Any = inst.config
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or not node:
                    return None
                node = node[part] if part < len(node) else node[0] if len(node) == 1 else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return None
        return node

    def is_set(self, inst: Instance, *path: Any) -> bool:
        """Set in the document: a known non-null value, or an expression in the configuration
        (an optional attribute a plan marks unknown because it is computed is not set)."""
        value = self.known(inst, *path)
        if value not in (None, "", []):
            return True
        expr = self.expression(inst, *path)
        return isinstance(expr, dict) and (bool(expr.get("references")) or expr.get("constant_value") not in (None, "", []))

    def references(self, inst: Instance, *path: Any) -> tuple[list[Ref], list[str]]:
        """The instances an attribute's expression references (and its other references)."""
        expr = self.expression(inst, *path)
        refs = expr.get("references") if isinstance(expr, dict) else None
        if not isinstance(refs, list):
            return [], []
        strings = [r for r in refs if isinstance(r, str)]
        by_resource: dict[str, tuple[str | None, str | None]] = {}
        others: list[str] = []
        for ref in strings:
            match = _REF.match(ref)
            head = ref.split(".")[0]
            if match is None or head in ("var", "local", "count", "each", "path", "terraform", "self", "module"):
                others.append(ref)
                continue
            resource = f"{match.group(1) or ''}{match.group(2)}.{match.group(3)}"
            index, attribute = match.group(4), match.group(5)
            old = by_resource.get(resource, (None, None))
            by_resource[resource] = (index or old[0], attribute or old[1])  # the most specific form
        found: list[Ref] = []
        for resource, (index, attribute) in by_resource.items():
            for target in self._select(inst, resource, index, others):
                found.append(Ref(target, attribute or "id"))
        for ref in others:  # module outputs: module.vpc.private_subnets
            if ref.startswith("module."):
                found.extend(self._module_output(inst, ref))
        return found, others

    def _select(self, inst: Instance, resource: str, index: str | None, others: list[str]) -> list[Instance]:
        candidates = self.by_key.get((inst.module, resource), [])
        if index is not None:
            key: int | str = int(index[1:-1]) if index[1:-1].isdigit() else index[2:-2]
            return [c for c in candidates if c.index == key]
        if len(candidates) > 1 and inst.index is not None:
            if isinstance(inst.index, int) and "count.index" in others:
                return [c for c in candidates if c.index == inst.index]
            if isinstance(inst.index, str) and any(o.startswith("each.") for o in others):
                return [c for c in candidates if c.index == inst.index]
        return list(candidates)

    def _module_output(self, inst: Instance, ref: str) -> list[Ref]:
        parts = ref.split(".")
        if len(parts) < 3:
            return []
        child = f"{inst.module}.module.{parts[1]}" if inst.module else f"module.{parts[1]}"
        conf = self.config_modules.get(_module_path(child), {})
        output = (conf.get("outputs") or {}).get(parts[2])
        if not isinstance(output, dict):
            return []
        proxy = Instance(address=f"{child}.output.{parts[2]}", module=child, type="", name="", index=None,
                         values={}, unknown={}, config={"value": output.get("expression")})
        return self.references(proxy, "value")[0]


def _get(node: Any, part: Any) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and part < len(node) else _MISSING
    return node.get(part, _MISSING) if isinstance(node, dict) else _MISSING


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def instance_id(inst: Instance, prefix: str) -> str:
    """The id of an instance: the real one when the document knows it, else synthesized."""
    known = inst.values.get("id") if inst.unknown is not True and not _get(inst.unknown, "id") is True else None
    if isinstance(known, str) and known.startswith(prefix + "-"):
        return known
    return synthesized_id(prefix, inst.address)
