"""Reads of the stack section of an environment page: the stored snapshot, never a call to AWS."""

from __future__ import annotations

from dataclasses import dataclass

from environments.models import Environment, Host, Stack, StackEvent
from environments.stacks import configuration_problem

EVENTS_SHOWN = 50


@dataclass
class StackPanel:
    environment: Environment
    stack: Stack | None
    events: list[StackEvent]
    hosts: list[Host]
    problem: str  # why the stack cannot be created or updated, "" when it can


def stack_panel(environment: Environment) -> StackPanel:
    """Three queries whatever the history: the stack, its newest events, the hosts."""
    stack = Stack.objects.filter(environment=environment).select_related("requested_by").first()
    events = list(stack.events.all()[:EVENTS_SHOWN]) if stack else []
    return StackPanel(environment=environment, stack=stack, events=events, hosts=list(environment.hosts.all()),
                      problem=configuration_problem(environment))
