"""The stack page of an environment and the operators' stack actions (create or update, refresh).

Apart from environments/views.py so that the environment page can include the same section
(templates/environments/_stack.html with `panel` from stack_selectors.stack_panel). The actions only queue tasks."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from environments.models import Environment
from environments.stack_selectors import stack_panel
from environments.stacks import StackRefused, request_stack_apply, request_stack_refresh
from portal.roles import Role, has_role, role_required


@require_GET
@role_required()
def stack_page(request, slug):
    environment = get_object_or_404(Environment, slug=slug)
    return render(request, "environments/stack.html", {
        "environment": environment, "panel": stack_panel(environment),
        "can_operate": has_role(request.user, Role.OPERATOR),
    })


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def stack_apply(request, slug):
    """GET asks for confirmation, naming the stack, template and parameters; POST queues the operation."""
    environment = get_object_or_404(Environment, slug=slug)
    panel = stack_panel(environment)
    status = 200
    if request.method == "POST":
        try:
            request_stack_apply(environment=environment, user=request.user)
        except StackRefused as refusal:
            messages.error(request, str(refusal))
            status = 409
        else:
            verb = "Update" if panel.stack and panel.stack.stack_id else "Creation"
            messages.success(request, f"{verb} of stack {environment.cloudformation_stack} queued: its events show "
                                      "below as CloudFormation reports them.")
            return redirect(reverse("environment-stack", args=[environment.slug]))
    return render(request, "environments/stack_confirm.html", {"environment": environment, "panel": panel},
                  status=status)


@require_POST
@role_required(Role.OPERATOR)
def stack_refresh(request, slug):
    environment = get_object_or_404(Environment, slug=slug)
    try:
        request_stack_refresh(environment=environment)
    except StackRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"Refresh of stack {environment.cloudformation_stack} queued.")
    return redirect(reverse("environment-stack", args=[environment.slug]))
