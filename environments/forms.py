from django import forms

from environments import selectors


class ConfirmForm(forms.Form):
    """The confirmation step of an operator's action; the reason matters only while a freeze window is in force."""

    freeze_override_reason = forms.CharField(
        required=False, max_length=300, strip=True, label="Reason to override the freeze",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Only while a freeze window is in force: kept on the deployment and in the audit log.",
    )


class DeployRunForm(ConfirmForm):
    run = forms.ModelChoiceField(
        queryset=selectors.deployable_runs(), label="Run",
        error_messages={"invalid_choice": "Choose a successful run whose images all have a digest.",
                        "required": "Choose the run to deploy."},
    )

    field_order = ["run", "freeze_override_reason"]
