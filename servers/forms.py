from django import forms

from models_registry.models import ModelProfile
from nodes.models import Node


class ServerStartForm(forms.Form):
    profile = forms.ModelChoiceField(queryset=ModelProfile.objects.order_by("name"), to_field_name="name",
                                     empty_label="choose a profile")
    node = forms.ModelChoiceField(queryset=Node.objects.order_by("name"), to_field_name="name", empty_label=None)
    port = forms.IntegerField(required=False, min_value=1024, max_value=65535,
                              help_text="Leave empty to take the proposed free port.")
    gpu_memory_utilization = forms.FloatField(required=False, min_value=0.0, max_value=1.0,
                                              help_text="Leave empty for the profile's value.")
    restart_policy = forms.ChoiceField(choices=[("never", "never"), ("on-failure", "on failure")], initial="never",
                                       required=False)
    allow_replica = forms.BooleanField(required=False, label="another replica of a running profile")
