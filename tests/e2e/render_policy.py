"""Render infra/ferry-iam.yaml's managed policies for given parameter values.

    python render_policy.py [--collapse] TEMPLATE Name=Value ...   prints the policy document (JSON)

--collapse writes one-element lists as their element, as infra/ferry-policy.json
does: with the sample values of tests/integration/iam_policy.rs (SAMPLE) it
prints that file exactly.

A small evaluator of the CloudFormation intrinsic functions the template uses:
!Ref (parameters and pseudo parameters), !Sub (string and [string, {vars}] forms),
!If with the template's Conditions, !Equals, !Not, !And, !Or, !Select, !Split,
!Join. Anything else fails loudly. Each `AWS::IAM::ManagedPolicy` whose Condition
holds contributes its statements; the statements of all of them form one policy
document (IAM evaluates a principal's attached policies together, so one document
with all their statements decides the same).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import yaml

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "AWS::URLSuffix": "amazonaws.com"}

FUNCTIONS = ("Ref", "Sub", "If", "Equals", "Not", "And", "Or", "Select", "Split", "Join", "GetAtt", "Condition")


class _Loader(yaml.SafeLoader):
    pass


def _tag(name: str) -> Any:
    key = "Ref" if name == "Ref" else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _name in FUNCTIONS:
    _Loader.add_constructor(f"!{_name}", _tag(_name))


class Renderer:
    def __init__(self, template: dict[str, Any], params: dict[str, str]) -> None:
        self.template = template
        self.values: dict[str, str] = dict(PSEUDO)
        for name, spec in (template.get("Parameters") or {}).items():
            if name in params:
                self.values[name] = params[name]
            elif "Default" in spec:
                self.values[name] = str(spec["Default"])
        unknown = set(params) - set(template.get("Parameters") or {}) - set(PSEUDO)
        if unknown:
            raise ValueError(f"the template has no parameters {sorted(unknown)}")
        for name, value in params.items():
            if name in PSEUDO:
                self.values[name] = value
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval(self.template["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name: str) -> str:
        if name not in self.values:
            raise ValueError(f"!Ref {name}: no value (a resource, or a parameter without a default and not given)")
        return self.values[name]

    def sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.eval(x) for x in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key.startswith("Fn::") or key == "Condition":
                return self.function(key.removeprefix("Fn::"), arg)
        return {k: self.eval(v) for k, v in node.items()}

    def function(self, name: str, arg: Any) -> Any:
        if name == "Sub":
            if isinstance(arg, str):
                return self.sub(arg, {})
            text, variables = arg
            return self.sub(text, {k: self.eval(v) for k, v in variables.items()})
        if name == "If":
            cond, yes, no = arg
            return self.eval(yes if self.condition(cond) else no)
        if name == "Condition":
            return self.condition(arg)
        if name == "Equals":
            a, b = self.eval(arg)
            return str(a) == str(b)
        if name == "Not":
            return not self.eval(arg[0])
        if name == "And":
            return all(self.eval(x) for x in arg)
        if name == "Or":
            return any(self.eval(x) for x in arg)
        if name == "Select":
            index, items = arg
            return self.eval(items)[int(self.eval(index))]
        if name == "Split":
            sep, text = arg
            return str(self.eval(text)).split(sep)
        if name == "Join":
            sep, items = arg
            return sep.join(str(x) for x in self.eval(items))
        raise ValueError(f"the renderer does not evaluate Fn::{name}")

    def managed_policies(self) -> list[dict[str, Any]]:
        out = []
        for _, resource in (self.template.get("Resources") or {}).items():
            if resource.get("Type") != "AWS::IAM::ManagedPolicy":
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            out.append(self.eval(resource["Properties"]["PolicyDocument"]))
        return out


def render(template_path: str, params: dict[str, str]) -> dict[str, Any]:
    """One policy document holding every (enabled) managed policy's statements."""
    with open(template_path) as f:
        template = yaml.load(f, Loader=_Loader)  # noqa: S506 - a loader with only the CFN tags added
    r = Renderer(template, params)
    statements: list[Any] = []
    for doc in r.managed_policies():
        st = doc["Statement"]
        statements.extend(st if isinstance(st, list) else [st])
    return {"Version": "2012-10-17", "Statement": statements}


def collapse(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: collapse(v) for k, v in x.items()}
    if isinstance(x, list):
        return collapse(x[0]) if len(x) == 1 else [collapse(v) for v in x]
    return x


def main() -> None:
    args = sys.argv[1:]
    collapsed = bool(args) and args[0] == "--collapse"
    if collapsed:
        args = args[1:]
    params = dict(a.split("=", 1) for a in args[1:])
    doc = render(args[0], params)
    print(json.dumps(collapse(doc) if collapsed else doc, indent=2))


if __name__ == "__main__":
    main()
