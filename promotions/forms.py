from django import forms
from django.forms import inlineformset_factory

from deliveries.models import GateCondition, QualityGate, WaiverKind


class DecisionForm(forms.Form):
    comment = forms.CharField(
        required=False, max_length=2000, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept with the decision and told to the requester; required to reject.",
    )
    # The confirmation, without script (the Content-Security-Policy runs none inline): a box to tick.
    confirm = forms.BooleanField(label="I have read the gate evaluation and the merge request")


class WaiverForm(forms.Form):
    kind = forms.ChoiceField(choices=WaiverKind.choices)
    identifier = forms.CharField(max_length=255, strip=True, help_text="The vulnerability id (CVE-…) or the scenario "
                                                                          "name, exactly as the gate lists it.")
    reason = forms.CharField(max_length=2000, strip=True, widget=forms.Textarea(attrs={"rows": 2}))
    expires_at = forms.DateTimeField(
        label="Expires", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="After this moment the waiver excuses nothing.",
    )


GateConditionFormSet = inlineformset_factory(
    QualityGate, GateCondition, fields=["metric", "comparator", "threshold", "relative_to_production"], extra=1,
    can_delete=True,
)
