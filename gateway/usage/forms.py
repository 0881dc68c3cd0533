from django import forms

from gateway.models import NOT_NEGATIVE


class ApiPriceForm(forms.Form):
    name = forms.CharField(max_length=100, label="API")
    input_per_million = forms.DecimalField(max_digits=10, decimal_places=4, validators=[NOT_NEGATIVE],
                                           label="Input price (USD per 1M tokens)")
    output_per_million = forms.DecimalField(max_digits=10, decimal_places=4, validators=[NOT_NEGATIVE],
                                            label="Output price (USD per 1M tokens)")
    cached_input_per_million = forms.DecimalField(max_digits=10, decimal_places=4, validators=[NOT_NEGATIVE],
                                                  required=False,
                                                  label="Cached input price (USD per 1M tokens; empty: the input "
                                                        "price)")


class CostSettingsForm(forms.Form):
    electricity_per_kwh = forms.DecimalField(max_digits=8, decimal_places=4, validators=[NOT_NEGATIVE],
                                             label="Electricity (USD per kWh)")
    hardware_cost = forms.DecimalField(max_digits=12, decimal_places=2, validators=[NOT_NEGATIVE],
                                       label="Hardware cost (USD)")
    load_watts = forms.IntegerField(min_value=0, max_value=100_000, label="Watts under load (no reading)")
    idle_watts = forms.IntegerField(min_value=0, max_value=100_000, label="Watts at idle (no reading)")


def error_text(form: forms.Form) -> str:
    """One line naming each bad field, for the page's alert."""
    return " ".join(f"{form.fields[name].label if name in form.fields else ''}: {' '.join(errors)}".lstrip(": ")
                    for name, errors in form.errors.items())
