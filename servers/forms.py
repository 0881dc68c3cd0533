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
    nodes = forms.CharField(required=False, max_length=1000, label="nodes (multi-node profile)",
                            help_text="Comma-separated, the leader first; empty: the portal picks them.")

    def clean_nodes(self) -> list[Node]:
        return nodes_by_name(self.cleaned_data.get("nodes") or "")


def nodes_by_name(text: str) -> list[Node]:
    """Comma-separated node names, in their order (the leader first), or a form error naming the unknown ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    found = {n.name: n for n in Node.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        known = ", ".join(Node.objects.order_by("name").values_list("name", flat=True))
        raise forms.ValidationError(f"No node named {', '.join(missing)} (nodes: {known}).")
    return [found[n] for n in names]


class GroupPreflightForm(forms.Form):
    """The start form's profile and nodes, for the Preflight button (the other fields are not read)."""

    profile = forms.ModelChoiceField(queryset=ModelProfile.objects.order_by("name"), to_field_name="name",
                                     error_messages={"required": "Choose a multi-node profile to check.",
                                                     "invalid_choice": "There is no such profile: choose one."})
    nodes = forms.CharField(required=False, max_length=1000)

    def clean_nodes(self) -> list[Node]:
        return nodes_by_name(self.cleaned_data.get("nodes") or "")


class GroupOnDemandForm(forms.Form):
    load_on_demand = forms.BooleanField(required=False)
    # Bounds are the service's (servers.groups.on_demand), which says what to fix.
    unload_idle_minutes = forms.IntegerField(required=False)
