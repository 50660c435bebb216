"""CloudFormation templates (YAML or JSON), SAM templates and CDK cloud assemblies, read into a
Topology.

- a template: YAML with the short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...; decoded by
  cfn-flip) or JSON; a SAM template (``Transform: AWS::Serverless-2016-10-31``) is first expanded
  by AWS's own SAM translator (``aws-sam-translator``, ``Globals`` included; no AWS call is made);
- a CDK cloud assembly (``cdk.out``): its ``manifest.json`` names the stacks' templates; every
  stack goes into one topology and ``Fn::ImportValue`` between them takes the other stacks'
  ``Outputs`` ``Export``s. A single synthesized ``*.template.json`` is a template.

The template is translated into a document of our topology format (docs/topology-format.md) and
loaded with ``parse_topology``, which applies AWS's defaults and validates; its errors are named
at their place in the template. The reader's own checks are the template's: references,
intrinsic functions, parameters, property types, circular dependencies.

Region: ``region=`` (the command line's ``--region``), else the region a CDK stack's environment
names, else that of the availability zones the template writes itself (``us-east-1b`` ->
``us-east-1``), else ``us-east-1``; it is ``AWS::Region`` and ``Fn::GetAZs`` lists ``<region>a``
to ``<region>f``. Parameters take their
``Default``; ``parameters={Name: value}`` (``--parameter Name=value``) overrides; a parameter
with neither is an error naming it. SSM parameter types and ``Fn::ImportValue`` (outside a CDK
assembly's own exports) take only values the user passes in ``parameters``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from hyperplane.errors import TopologyError
from hyperplane.formats._iac import NotEmulated
from hyperplane.formats._source import load_json, read_text
from hyperplane.formats.cloudformation_links import allocate_addresses, attach, primary_eni, set_addresses
from hyperplane.formats.cloudformation_resources import translate
from hyperplane.formats.cloudformation_stack import Document, Stack
from hyperplane.formats.snapshot_report import SnapshotReport
from hyperplane.model import Topology

__all__ = ["read_cloudformation", "load_cloudformation", "is_template", "sniff_template", "SAM_TRANSFORM"]

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
#: Transforms that need nothing more than the functions the resolver has.
_HARMLESS_TRANSFORMS = ("AWS::LanguageExtensions",)
_ZONE = re.compile(r"\b([a-z]{2}(?:-gov)?-(?:north|south|east|west|central|northeast|southeast|northwest|southwest)-\d)[a-z]\b")
_SNIFF = re.compile(r"(?:^|[{,])\s*[\"']?(AWSTemplateFormatVersion|Resources)[\"']?\s*:", re.MULTILINE)
_TYPE = re.compile(r"[\"']?Type[\"']?\s*:\s*[\"']?(AWS|Custom)::")


def sniff_template(text: str) -> bool:
    """Whether a file's text looks like a CloudFormation template (cheap, before parsing)."""
    head = text[:200_000]
    return bool(_SNIFF.search(head)) and ("AWSTemplateFormatVersion" in head or bool(_TYPE.search(head)))


def is_template(document: Any) -> bool:
    """Whether a parsed document is a CloudFormation template."""
    if not isinstance(document, dict):
        return False
    if "AWSTemplateFormatVersion" in document:
        return True
    resources = document.get("Resources")
    return isinstance(resources, dict) and bool(resources) and all(
        isinstance(r, dict) and str(r.get("Type", "")).startswith(("AWS::", "Custom::")) for r in resources.values())


def load_cloudformation(path: str | os.PathLike[str], *, region: str | None = None,
                        parameters: Mapping[str, str] | None = None) -> Topology:
    """A template or CDK assembly as a validated Topology; warns once about what is not emulated
    (:class:`~hyperplane.formats.snapshot_report.SnapshotWarning`)."""
    topology, _ = read_cloudformation(path, region=region, parameters=parameters, warn=True)
    return topology


def read_cloudformation(path: str | os.PathLike[str], *, region: str | None = None,
                        parameters: Mapping[str, str] | None = None,
                        warn: bool = False) -> tuple[Topology, SnapshotReport]:
    """The Topology of a template, SAM template or CDK assembly folder, and the report of what
    was not emulated (``skipped``) and what was decided (``notes``)."""
    path = Path(path)
    # a template's ids are scoped by nothing (renaming the file keeps them); a CDK stack's by its name
    templates = _assembly(path) if path.is_dir() else [(path.name, "", _read_template(path, path.name), None)]
    name = path.name
    chosen = region or next((r for *_, r in templates if r), None) or _zone_region(t for _, _, t, _ in templates)
    report = NotEmulated(name)
    account = next((t["_account"] for _, _, t, _ in templates if isinstance(t, dict) and t.get("_account")), None)
    document = Document(name, chosen, str(account or "123456789012"))
    values = dict(parameters or {})
    stacks: list[Stack] = []
    allocated: dict[str, str] = {}
    busy: list[bool] = []

    def address(stack: Stack, logical: str, where: str) -> str:
        if not allocated:
            if busy:
                stack.fail(where, "circular reference: an address is needed to allocate the addresses")
            busy.append(True)
            allocated.update(allocate_addresses(stacks))
            busy.clear()
        found = allocated.get(primary_eni(stack, logical))
        if found is None:
            stack.fail(where, f"{logical} has no private address (it is not placed in a subnet of the template)")
        return found

    def imports(export: str, where: str) -> Any:
        for stack in stacks:
            for output in (stack.template.get("Outputs") or {}).values():
                if isinstance(output, dict) and isinstance(output.get("Export"), dict):
                    if stack.r.resolve(output["Export"].get("Name"), where) == export:
                        return stack.r.resolve(output.get("Value"), where)
        if export in values:
            return values[export]
        raise TopologyError(templates[0][0] if len(templates) == 1 else name, where,
                            f"!ImportValue {export}: no stack of this load exports it; pass its value "
                            f"(parameters={{{export!r}: ...}}, --parameter {export}=...)")

    for file, stack_name, template, _ in templates:
        template = _expand(template, file, chosen, values)
        stacks.append(Stack(file, template, name=stack_name or Path(file).stem, scope=stack_name, document=document,
                            parameters=_parameters(template, file, values), imports=imports,
                            report=report, addresses=address))
    for stack in stacks:
        _check_dependencies(stack)
        translate(stack)
    attach(document)
    if not allocated:
        allocated.update(allocate_addresses(stacks))
    set_addresses(document, allocated)
    from hyperplane.formats.topology_reader import parse_topology
    try:
        topology = parse_topology(document.topology(), file=name)
    except TopologyError as exc:
        raise document.origin_of(exc) from None
    done = report.report() if warn else SnapshotReport(source=name, skipped=dict(report.skipped), notes=list(report.notes))
    done.files = [file for file, *_ in templates]
    done.regions = [chosen]
    return topology, done


# --- files ---------------------------------------------------------------------------------

def _read_template(path: Path, name: str) -> Any:
    text = read_text(path, name)
    if text.lstrip().startswith("{"):
        document = load_json(text, name)
    else:
        document = _load_yaml(text, name)
    if not is_template(document):
        raise TopologyError(name, "", "not a CloudFormation template (no AWSTemplateFormatVersion, "
                                      "no Resources of AWS:: types)")
    return document


def _load_yaml(text: str, name: str) -> Any:
    import yaml
    from cfn_flip import load_yaml  # the short-form tags, as CloudFormation reads them

    try:
        document = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise TopologyError(name, f"line {line}, column {column}", " ".join(str(exc.problem or exc).split()),
                            line=line, column=column) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise TopologyError(name, "", " ".join(str(exc).split())) from None
    return json.loads(json.dumps(document, default=str))  # plain dicts, dates as text


def _assembly(folder: Path) -> list[tuple[str, str, Any, str | None]]:
    """The stacks of a CDK cloud assembly: (file, stack name, template, region or None)."""
    manifest_path = folder / "manifest.json"
    name = f"{folder.name}/manifest.json"
    manifest = load_json(read_text(manifest_path, name), name) if manifest_path.is_file() else None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise TopologyError(name, "", "not a CDK cloud assembly manifest (no artifacts)")
    stacks = []
    for stack_name, artifact in manifest["artifacts"].items():
        if not isinstance(artifact, dict):
            continue
        if artifact.get("type") == "cdk:cloud-assembly":  # a nested assembly (CDK stages)
            inner = (artifact.get("properties") or {}).get("directoryName")
            if inner:
                stacks += _assembly(folder / str(inner))
            continue
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template_file = (artifact.get("properties") or {}).get("templateFile")
        if not isinstance(template_file, str):
            raise TopologyError(name, f"artifacts.{stack_name}.properties.templateFile", "missing")
        file = f"{folder.name}/{template_file}"
        template = _read_template(folder / template_file, file)
        environment = str(artifact.get("environment") or "")
        parts = environment.removeprefix("aws://").split("/")
        region = parts[1] if len(parts) == 2 and not parts[1].startswith("unknown") else None
        account = parts[0] if len(parts) == 2 and parts[0].isdigit() and len(parts[0]) == 12 else None
        if account:
            template["_account"] = account
        stacks.append((file, stack_name, template, region))
    if not stacks:
        raise TopologyError(name, "artifacts", "the assembly holds no CloudFormation stack")
    return stacks


def _zone_region(templates: Iterable[Any]) -> str:
    """The region of the first availability zone a template writes, else us-east-1."""
    for template in templates:
        found = _ZONE.search(json.dumps(template.get("Resources") or {}))
        if found:
            return found.group(1)
    return "us-east-1"


# --- SAM, parameters, dependencies ---------------------------------------------------------

def _transforms(template: Mapping[str, Any]) -> list[str]:
    value = template.get("Transform") or []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _expand(template: dict[str, Any], file: str, region: str, values: Mapping[str, str]) -> dict[str, Any]:
    template.pop("_account", None)
    transforms = _transforms(template)
    for transform in transforms:
        if transform != SAM_TRANSFORM and transform not in _HARMLESS_TRANSFORMS:
            raise TopologyError(file, "Transform", f"the macro {transform} is not expanded: give the processed "
                                                   "template (aws cloudformation get-template --template-stage Processed)")
    if SAM_TRANSFORM not in transforms:
        return template
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    _placeholder_code(template)
    declared = template.get("Parameters") or {}
    parameter_values = {k: v for k, v in values.items() if k in declared}
    parameter_values.update({"AWS::Region": region, "AWS::Partition": "aws"})
    # no AWS call: the session only names the region, the policy map turns SAM's policy names into ARNs
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        expanded = translator.translate(json.loads(json.dumps(template)), parameter_values=parameter_values,
                                        get_managed_policy_map=_managed_policy_map)
    except InvalidDocumentException as exc:
        causes = "; ".join(" ".join(str(getattr(c, "message", c)).split()) for c in exc.causes) or str(exc)
        raise TopologyError(file, "", f"the SAM transform refused the template: {causes}") from None
    finally:
        translator.metrics.publish()  # to its no-op publisher (else it logs a warning)
    return dict(expanded)


#: SAM properties naming local files that ``sam package`` uploads to S3 before the transform.
_LOCAL_URIS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri",
               "AWS::Serverless::Api": "DefinitionUri", "AWS::Serverless::HttpApi": "DefinitionUri",
               "AWS::Serverless::StateMachine": "DefinitionUri", "AWS::Serverless::Application": "Location"}


def _placeholder_code(template: dict[str, Any]) -> None:
    """Local code paths as ``sam package`` would leave them (S3 URIs): the network does not
    depend on the code, and the translator accepts only S3 URIs."""
    spots: list[tuple[Any, str, str]] = [((template.get("Globals") or {}).get("Function"), "CodeUri", "Globals")]
    spots += [(r.get("Properties"), _LOCAL_URIS[str(r.get("Type"))], logical)
              for logical, r in (template.get("Resources") or {}).items()
              if isinstance(r, dict) and r.get("Type") in _LOCAL_URIS]
    for props, key, label in spots:
        if isinstance(props, dict) and isinstance(props.get(key), str) and not props[key].startswith(("s3://", "https://")):
            props[key] = f"s3://local-code/{label}/{props[key]}"


def _managed_policy_map() -> dict[str, str]:
    from hyperplane.model.values import MANAGED_POLICIES
    return {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in MANAGED_POLICIES}


def _parameters(template: Mapping[str, Any], file: str, values: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    declared = template.get("Parameters") or {}
    if not isinstance(declared, dict):
        raise TopologyError(file, "Parameters", "must be a mapping")
    for name, spec in declared.items():
        where = f"Parameters.{name}"
        if not isinstance(spec, dict):
            raise TopologyError(file, where, "a parameter must be a mapping with a Type")
        kind = str(spec.get("Type", "String"))
        if name in values:
            value: Any = values[name]
        elif kind.startswith("AWS::SSM::Parameter::"):
            out[name] = ValueError(f"an SSM parameter ({kind}) is not read from AWS: pass its value "
                                   f"(parameters={{{name!r}: ...}}, --parameter {name}=...)")
            continue
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TopologyError(file, where, f"parameter {name} has no Default and no value was passed "
                                             f"(parameters={{{name!r}: ...}}, --parameter {name}=...)")
        allowed = spec.get("AllowedValues")
        if isinstance(allowed, list) and str(value) not in [str(a) for a in allowed]:
            raise TopologyError(file, where, f"{value!r} is not one of the AllowedValues {allowed}")
        if kind == "Number":
            try:
                float(value)
            except (TypeError, ValueError):
                raise TopologyError(file, where, f"{value!r} is not a Number") from None
        if kind.startswith("List<") or kind == "CommaDelimitedList":
            value = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
        out[name] = value
    return out


def _references(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                target = arg.split(".", 1)[0] if isinstance(arg, str) else (arg[0] if isinstance(arg, list) and arg else None)
                if isinstance(target, str):
                    yield target
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) and arg else arg
                if isinstance(text, str):
                    yield from (m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _check_dependencies(stack: Stack) -> None:
    """CloudFormation refuses a template whose resources depend on each other in a circle."""
    resources = stack.resources
    edges: dict[str, list[str]] = {}
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise TopologyError(stack.file, f"Resources.{logical}", "a resource must be a mapping with a Type")
        depends = resource.get("DependsOn") or []
        targets = list(_references(resource.get("Properties"))) + list([depends] if isinstance(depends, str) else depends)
        edges[logical] = [t for t in targets if t in resources]  # a resource naming itself is a circle too
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise TopologyError(stack.file, f"Resources.{target}", "circular dependency between resources: "
                                    + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for logical in resources:
        if logical not in state:
            visit(logical)
