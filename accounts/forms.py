import re

from django import forms

# Served model names: no spaces or control characters (a pasted tab or newline would never match).
MODEL_NAME = re.compile(r"[\w.:/@+-]{1,200}")


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'laptop-continue'.")
    scopes = forms.CharField(required=False, max_length=1000,
                             help_text="Comma-separated model names; empty = every model you may use.")
    expires_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     help_text="Empty = never expires.")
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                  help_text="The team its requests are charged to; empty = your only team if you "
                                            "have one, else none.")

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "—"), *((t.pk, t.name) for t in teams)]
        if not teams:
            del self.fields["team"]

    def clean_scopes(self) -> str:
        scopes = self.cleaned_data.get("scopes", "")
        bad = [name for name in (s.strip() for s in scopes.split(",")) if name and not MODEL_NAME.fullmatch(name)]
        if bad:
            raise forms.ValidationError(f"{bad[0]!r} is not a served model name: names have no spaces or control "
                                        "characters. Pick them from the list, separated by commas.")
        return scopes

    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data.get("scopes", "").split(",") if s.strip()]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.CharField(required=False)
    day_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
