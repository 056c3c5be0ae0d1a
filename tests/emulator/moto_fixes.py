"""Small repairs to moto 5.2.5 bugs and gaps that ferry's calls run into.

Each fix wraps a moto function or class from the outside; nothing of moto is
copied. ``apply()`` is idempotent.
"""

from __future__ import annotations

import copy
from typing import Any

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _eni_private_dns_name()
    _ecs_containers_without_memory()
    _cfn_task_definition_properties()
    _task_definition_registration_fields()


def _eni_private_dns_name() -> None:
    """RunTask with awsvpc reads ``eni.private_dns_name``, which moto only sets
    when the VPC has DNS hostnames enabled: AttributeError, HTTP 500. Real ENIs
    always have a private DNS name, so give every ENI one."""
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ec2.utils import generate_dns_from_ip

    original_init = NetworkInterface.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if not hasattr(self, "private_dns_name") and self.private_ip_address:
            self.private_dns_name = generate_dns_from_ip(self.private_ip_address)

    NetworkInterface.__init__ = __init__  # type: ignore[method-assign]


def _ecs_containers_without_memory() -> None:
    """moto adds up container ``memory`` to place a task and crashes (None + int)
    on a Fargate task definition whose containers leave memory to the task level."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def calculate(task_definition: Any) -> dict[str, Any]:
        patched = copy.copy(task_definition)
        defs = []
        for c in task_definition.container_definitions:
            has_any = any(c.get(k) is not None for k in ("Memory", "MemoryReservation", "memory", "memoryReservation"))
            defs.append(c if has_any else {**c, "memory": 0})
        patched.container_definitions = defs
        return original(patched)

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)  # type: ignore[method-assign]


def _cfn_task_definition_properties() -> None:
    """CloudFormation's AWS::ECS::TaskDefinition in moto keeps only Family,
    ContainerDefinitions, Volumes and Memory: NetworkMode (so awsvpc becomes
    bridge), Cpu, RequiresCompatibilities, the roles and Tags are dropped.
    Register the task definition with all of them."""
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs.models import TaskDefinition, ecs_backends
    from moto.moto_api._internal import mock_random

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = cloudformation_json["Properties"]

        def camel(key: str) -> Any:
            value = props.get(key)
            return remap_nested_keys(value, pascal_to_camelcase) if value is not None else None

        tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags") or []]
        return ecs_backends[account_id][region_name].register_task_definition(
            family=props.get("Family") or f"task-definition-{int(mock_random.random() * 10**6)}",
            container_definitions=camel("ContainerDefinitions") or [],
            volumes=camel("Volumes") or [],
            network_mode=props.get("NetworkMode"),
            tags=tags or None,
            placement_constraints=camel("PlacementConstraints"),
            requires_compatibilities=props.get("RequiresCompatibilities"),
            cpu=None if props.get("Cpu") is None else str(props["Cpu"]),
            memory=None if props.get("Memory") is None else str(props["Memory"]),
            task_role_arn=props.get("TaskRoleArn"),
            execution_role_arn=props.get("ExecutionRoleArn"),
            runtime_platform=camel("RuntimePlatform"),
            ephemeral_storage=camel("EphemeralStorage"),
        )

    TaskDefinition.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[method-assign,assignment]


def _task_definition_registration_fields() -> None:
    """moto's task definitions lack the fields ECS sets at registration
    (``registeredAt``, ``registeredBy``, ``requiresAttributes``) and drop
    ``enableFaultInjection`` from RegisterTaskDefinition. ECS answers with all
    of them, and a copy of a task definition must leave out the read-only ones:
    set them, deriving ``requiresAttributes`` from the definition as ECS does
    for the capabilities ferry's stack uses."""
    from moto.core.utils import utcnow
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.ecs.responses import EC2ContainerServiceResponse

    original_register = EC2ContainerServiceBackend.register_task_definition

    def register(self: Any, *args: Any, **kwargs: Any) -> Any:
        td = original_register(self, *args, **kwargs)
        td.registered_at = utcnow()
        td.registered_by = f"arn:aws:iam::{self.account_id}:root"
        td.requires_attributes = [{"name": n} for n in _required_attributes(td)]
        return td

    EC2ContainerServiceBackend.register_task_definition = register  # type: ignore[method-assign]

    original_response = EC2ContainerServiceResponse.register_task_definition

    def register_response(self: Any) -> Any:
        result = original_response(self)
        fault_injection = self._get_param("enableFaultInjection")
        if fault_injection is not None:
            result.result["taskDefinition"].enable_fault_injection = bool(fault_injection)
        return result

    EC2ContainerServiceResponse.register_task_definition = register_response  # type: ignore[method-assign]


def _required_attributes(td: Any) -> list[str]:
    names = []
    drivers = {(c.get("logConfiguration") or {}).get("logDriver") for c in td.container_definitions}
    if "awslogs" in drivers:
        names += ["com.amazonaws.ecs.capability.logging-driver.awslogs", "com.amazonaws.ecs.capability.docker-remote-api.1.19"]
        if getattr(td, "execution_role_arn", None):
            names.append("ecs.capability.execution-role-awslogs")
    if getattr(td, "task_role_arn", None):
        names.append("com.amazonaws.ecs.capability.task-iam-role")
    if td.network_mode == "awsvpc":
        names.append("ecs.capability.task-eni")
    return names
