import re

from django import forms
from django.core.exceptions import ValidationError

from deliveries.models import RunStatus

# What `git check-ref-format --branch` refuses: control characters, space, ~ ^ : ? * [ \ and DEL.
REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
COMMIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")


def validate_branch_name(name: str) -> None:
    parts = name.split("/")
    if (
        REF_FORBIDDEN.search(name)
        or ".." in name
        or "@{" in name
        or name == "@"
        or name.startswith("-")
        or name.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise ValidationError("This is not a valid git branch name.", code="invalid_branch")


class RunPipelineForm(forms.Form):
    branch = forms.CharField(max_length=255, validators=[validate_branch_name])
    commit = forms.CharField(
        required=False, max_length=40, help_text="Optional: 7 to 40 hexadecimal digits. Empty: the branch's head."
    )

    def __init__(self, *args, project, branches=(), **kwargs):
        kwargs.setdefault("initial", {"branch": project.dev_branch})
        super().__init__(*args, **kwargs)
        # Suggested in a datalist; any valid branch name is accepted.
        self.suggestions = list(dict.fromkeys([project.dev_branch, project.release_branch, *branches]))

    def clean_commit(self):
        commit = self.cleaned_data["commit"].lower()
        if commit and not COMMIT_SHA.match(commit):
            raise ValidationError("A commit is 7 to 40 hexadecimal digits.", code="invalid_commit")
        return commit


class RunCloseForm(forms.Form):
    reason = forms.CharField(
        max_length=300, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown on the run page and kept in the audit log.",
    )


class RunFilterForm(forms.Form):
    """The run history's filters; invalid values are ignored rather than refused (it is a GET form)."""

    branch = forms.CharField(required=False, max_length=255)
    status = forms.CharField(required=False)
    since = forms.DateField(required=False)
    until = forms.DateField(required=False)

    def filters(self) -> dict:
        if not self.is_valid():
            return {"branch": "", "status": "", "since": None, "until": None}
        data = dict(self.cleaned_data)
        if data["status"] not in RunStatus.values:
            data["status"] = ""
        return data
