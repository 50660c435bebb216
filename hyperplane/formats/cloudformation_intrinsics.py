"""CloudFormation's intrinsic functions, resolved from one table (:data:`INTRINSICS`).

:class:`Resolver` turns a property value of a template into plain data: ``Ref`` (parameters,
pseudo parameters, resources), ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``,
``Fn::Split``, ``Fn::GetAZs``, ``Fn::Cidr``, ``Fn::FindInMap``, ``Fn::If`` and the condition
functions, ``Fn::ImportValue``, ``Fn::Base64``, ``Fn::Length``, ``Fn::ToJsonString``. What a
resource's ``Ref`` or attribute is comes from the reader (``ref`` and ``getatt`` callbacks);
everything else is here. ``AWS::NoValue`` removes the key or list item it stands in.

Every failure is a :class:`~hyperplane.errors.TopologyError` naming the file, the path in the
template (``Resources.PrivateRoute.Properties.NatGatewayId``) and the problem, written with the
short-form tag the user sees (``!Ref NatGatewayB names no resource``).
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Network
from typing import Any, Callable, Mapping, NoReturn

from hyperplane.errors import TopologyError

__all__ = ["INTRINSICS", "NO_VALUE", "Resolver", "zones_of"]


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


#: What ``Ref: AWS::NoValue`` resolves to: dropped from the mapping or list holding it.
NO_VALUE: Any = _NoValue()

#: Availability zones ``Fn::GetAZs`` lists for every region: ``<region>a`` to ``<region>f``
#: (AWS lists a region's zones in alphabetical order; how many a region has varies).
ZONE_LETTERS = "abcdef"


def zones_of(region: str) -> list[str]:
    return [region + letter for letter in ZONE_LETTERS]


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves values of one template.

    ``ref(logical_id, where)`` and ``getatt(logical_id, attribute, where)`` answer for resources
    (the reader synthesizes ids and addresses); ``imports`` are the values ``Fn::ImportValue``
    may take (the user's and other stacks' exports).
    """

    def __init__(self, file: str, template: Mapping[str, Any], *, pseudo: Mapping[str, Any],
                 parameters: Mapping[str, Any], ref: Callable[[str, str], Any],
                 getatt: Callable[[str, str, str], Any], imports: Callable[[str, str], Any]) -> None:
        self.file = file
        self.template = template
        self.pseudo = pseudo
        self.parameters = parameters
        self.ref_resource = ref
        self.getatt_resource = getatt
        self.import_value = imports
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.conditions_cache: dict[str, bool] = {}
        self.conditions_busy: set[str] = set()

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TopologyError(self.file, where, problem)

    # ---------------------------------------------------------------------------------------

    def resolve(self, value: Any, where: str) -> Any:
        """``value`` with every intrinsic function replaced by its result."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key in INTRINSICS:
                    return INTRINSICS[key](self, arg, where)
                if key.startswith("Fn::"):
                    self.fail(where, f"unknown intrinsic function {key}")
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item, f"{where}.{key}" if where else key)
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            items = (self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not NO_VALUE]
        return value

    def string(self, value: Any, where: str, what: str) -> str:
        value = self.resolve(value, where)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            self.fail(where, f"{what} must be a string, not {_kind(value)}")
        return value

    def items(self, value: Any, where: str, what: str) -> list[Any]:
        value = self.resolve(value, where)
        if not isinstance(value, list):
            self.fail(where, f"{what} must be a list, not {_kind(value)}")
        return value

    def condition(self, name: Any, where: str) -> bool:
        """The value of the named condition of ``Conditions``."""
        conditions = self.template.get("Conditions") or {}
        if not isinstance(name, str) or name not in conditions:
            self.fail(where, f"condition {name!r} is not declared in Conditions")
        if name not in self.conditions_cache:
            if name in self.conditions_busy:
                self.fail(f"Conditions.{name}", f"condition {name} depends on itself")
            self.conditions_busy.add(name)
            value = self.resolve(conditions[name], f"Conditions.{name}")
            self.conditions_busy.discard(name)
            self.conditions_cache[name] = _boolean(self, value, f"Conditions.{name}")
        return self.conditions_cache[name]


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _boolean(r: Resolver, value: Any, where: str) -> bool:
    if isinstance(value, dict) and list(value) == ["Condition"]:  # a condition names another
        return r.condition(value["Condition"], where)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    r.fail(where, f"a condition must be true or false, not {value!r}")


def _args(r: Resolver, arg: Any, where: str, tag: str, count: int | tuple[int, ...]) -> list[Any]:
    counts = (count,) if isinstance(count, int) else count
    if not isinstance(arg, list) or len(arg) not in counts:
        r.fail(where, f"!{tag} takes a list of {' or '.join(map(str, counts))} values")
    return arg


# ------------------------------------------------------------------------------------------
# the functions


def _ref(r: Resolver, arg: Any, where: str) -> Any:
    if not isinstance(arg, str):
        r.fail(where, f"!Ref takes a logical id, not {_kind(arg)}")
    if arg == "AWS::NoValue":
        return NO_VALUE
    if arg.startswith("AWS::"):
        if arg not in r.pseudo:
            r.fail(where, f"!Ref {arg} is not a pseudo parameter")
        return r.pseudo[arg]
    if arg in r.parameters:
        value = r.parameters[arg]
        if isinstance(value, Exception):  # a parameter whose value only the user could give
            r.fail(where, f"!Ref {arg}: {value}")
        return value
    if arg in r.resources:
        return r.ref_resource(arg, where)
    r.fail(where, f"!Ref {arg} names no resource or parameter")


def _getatt(r: Resolver, arg: Any, where: str) -> Any:
    if isinstance(arg, str) and "." in arg:
        arg = arg.split(".", 1)
    if not isinstance(arg, list) or len(arg) != 2:
        r.fail(where, "!GetAtt takes LogicalId.Attribute")
    logical, attribute = arg[0], r.string(arg[1], where, "the attribute of !GetAtt")
    if not isinstance(logical, str) or logical not in r.resources:
        r.fail(where, f"!GetAtt {logical}.{attribute} names no resource")
    return r.getatt_resource(logical, attribute, where)


def _sub(r: Resolver, arg: Any, where: str) -> str:
    variables: dict[str, Any] = {}
    if isinstance(arg, list):
        text, names = _args(r, arg, where, "Sub", 2)
        if not isinstance(names, dict):
            r.fail(where, "the variables of !Sub must be a mapping")
        variables = {k: r.resolve(v, f"{where}[1].{k}") for k, v in names.items()}
    else:
        text = arg
    if not isinstance(text, str):
        r.fail(where, f"!Sub takes a string, not {_kind(text)}")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # ${!Literal} is written as ${Literal}
            return "${" + name[1:] + "}"
        if name in variables:
            found = variables[name]
        elif "." in name and not name.startswith("AWS::") and name.split(".", 1)[0] in r.resources:
            found = _getatt(r, name, where)
        else:
            found = _ref(r, name, where)
        if isinstance(found, (list, dict)) or found is NO_VALUE:
            r.fail(where, f"!Sub ${{{name}}} is {_kind(found)}, not a string")
        return str(found).lower() if isinstance(found, bool) else str(found)

    return _SUB_VARIABLE.sub(value, text)


def _join(r: Resolver, arg: Any, where: str) -> str:
    delimiter, values = _args(r, arg, where, "Join", 2)
    if not isinstance(delimiter, str):
        r.fail(where, "the delimiter of !Join must be a string")
    parts = r.items(values, f"{where}[1]", "the values of !Join")
    return delimiter.join(r.string(p, f"{where}[1][{i}]", "a value of !Join") for i, p in enumerate(parts))


def _select(r: Resolver, arg: Any, where: str) -> Any:
    index, values = _args(r, arg, where, "Select", 2)
    number = r.resolve(index, f"{where}[0]")
    try:
        position = int(number)
    except (TypeError, ValueError):
        r.fail(where, f"the index of !Select must be a number, not {number!r}")
    items = r.items(values, f"{where}[1]", "the values of !Select")
    if not 0 <= position < len(items):
        r.fail(where, f"!Select index {position} is outside a list of {len(items)}")
    return items[position]


def _split(r: Resolver, arg: Any, where: str) -> list[str]:
    delimiter, text = _args(r, arg, where, "Split", 2)
    if not isinstance(delimiter, str) or not delimiter:
        r.fail(where, "the delimiter of !Split must be a non-empty string")
    return r.string(text, f"{where}[1]", "the source of !Split").split(delimiter)


def _get_azs(r: Resolver, arg: Any, where: str) -> list[str]:
    region = r.string(arg, where, "the region of !GetAZs") if arg is not None else ""
    return zones_of(region or r.pseudo["AWS::Region"])


def _cidr(r: Resolver, arg: Any, where: str) -> list[str]:
    block, count, bits = _args(r, arg, where, "Cidr", 3)
    text = r.string(block, f"{where}[0]", "the IP block of !Cidr")
    try:
        network = IPv4Network(text)
        number, host_bits = int(r.resolve(count, f"{where}[1]")), int(r.resolve(bits, f"{where}[2]"))
    except ValueError as exc:
        r.fail(where, f"!Cidr: {exc}")
    prefix = 32 - host_bits
    if not network.prefixlen <= prefix <= 32 or not 1 <= number <= 256:
        r.fail(where, f"!Cidr cannot cut {number} blocks of {host_bits} host bits from {network}")
    blocks = []
    for i, sub in enumerate(network.subnets(new_prefix=prefix)):
        if i == number:
            break
        blocks.append(str(sub))
    if len(blocks) < number:
        r.fail(where, f"!Cidr: {network} holds {len(blocks)} /{prefix} block{'s' if len(blocks) != 1 else ''}, "
                      f"not {number}")
    return blocks


def _find_in_map(r: Resolver, arg: Any, where: str) -> Any:
    name, first, second = _args(r, arg, where, "FindInMap", 3)[:3]
    keys = [r.string(k, f"{where}[{i}]", "a key of !FindInMap") for i, k in enumerate((name, first, second))]
    node: Any = r.template.get("Mappings") or {}
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            r.fail(where, f"!FindInMap [{', '.join(keys)}]: no key {key!r}"
                          + (" in Mappings" if depth == 0 else f" in {'.'.join(keys[:depth])}"))
        node = node[key]
    return r.resolve(node, where)


def _if(r: Resolver, arg: Any, where: str) -> Any:
    name, when_true, when_false = _args(r, arg, where, "If", 3)
    if r.condition(name, f"{where}[0]"):
        return r.resolve(when_true, f"{where}[1]")
    return r.resolve(when_false, f"{where}[2]")


def _equals(r: Resolver, arg: Any, where: str) -> bool:
    left, right = (r.resolve(v, f"{where}[{i}]") for i, v in enumerate(_args(r, arg, where, "Equals", 2)))
    if isinstance(left, (list, dict)) or isinstance(right, (list, dict)):
        return bool(left == right)
    return _scalar(left) == _scalar(right)  # CloudFormation compares the text: true == "true", 1 == "1"


def _scalar(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _and(r: Resolver, arg: Any, where: str) -> bool:
    values = _args(r, arg, where, "And", tuple(range(2, 11)))
    return all(_boolean(r, r.resolve(v, f"{where}[{i}]"), f"{where}[{i}]") for i, v in enumerate(values))


def _or(r: Resolver, arg: Any, where: str) -> bool:
    values = _args(r, arg, where, "Or", tuple(range(2, 11)))
    return any(_boolean(r, r.resolve(v, f"{where}[{i}]"), f"{where}[{i}]") for i, v in enumerate(values))


def _not(r: Resolver, arg: Any, where: str) -> bool:
    value, = _args(r, arg, where, "Not", 1)
    return not _boolean(r, r.resolve(value, f"{where}[0]"), f"{where}[0]")


def _import_value(r: Resolver, arg: Any, where: str) -> Any:
    return r.import_value(r.string(arg, where, "the name of !ImportValue"), where)


def _base64(r: Resolver, arg: Any, where: str) -> str:
    return r.string(arg, where, "the value of !Base64")  # what it encodes is what we read


def _length(r: Resolver, arg: Any, where: str) -> int:
    return len(r.items(arg, where, "the value of Fn::Length"))


def _to_json_string(r: Resolver, arg: Any, where: str) -> str:
    return json.dumps(r.resolve(arg, where), separators=(",", ":"))


def _transform(r: Resolver, arg: Any, where: str) -> NoReturn:
    r.fail(where, "Fn::Transform (a macro) is not expanded: give the processed template "
                  "(aws cloudformation get-template --template-stage Processed)")


#: Every intrinsic function, by its long-form key. ``{Condition: Name}`` inside the condition
#: functions names another condition (read by them, not here: ``Condition`` is also a key of IAM
#: policy statements).
INTRINSICS: Mapping[str, Callable[[Resolver, Any, str], Any]] = {
    "Ref": _ref, "Fn::GetAtt": _getatt, "Fn::Sub": _sub, "Fn::Join": _join, "Fn::Select": _select,
    "Fn::Split": _split, "Fn::GetAZs": _get_azs, "Fn::Cidr": _cidr, "Fn::FindInMap": _find_in_map,
    "Fn::If": _if, "Fn::Equals": _equals, "Fn::And": _and, "Fn::Or": _or, "Fn::Not": _not,
    "Fn::ImportValue": _import_value, "Fn::Base64": _base64,
    "Fn::Length": _length, "Fn::ToJsonString": _to_json_string, "Fn::Transform": _transform,
}
