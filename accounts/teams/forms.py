from django import forms


class MemberLimitsForm(forms.Form):
    """Empty means the team's own limit."""

    requests_per_minute = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    tokens_per_day = forms.IntegerField(required=False, min_value=0, max_value=2**53)
    concurrent_requests = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
