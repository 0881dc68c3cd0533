from django import forms

from benchmarks.models import BenchmarkPlan, Workload
from models_registry.models import ModelProfile
from nodes.models import Node


class PlanForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Letters, digits and dashes, e.g. weekly-chat-models.")
    profiles = forms.ModelMultipleChoiceField(queryset=ModelProfile.objects.all(), widget=forms.CheckboxSelectMultiple,
                                              help_text="Benchmarked one after another, in name order.")
    workload = forms.ModelChoiceField(queryset=Workload.objects.all(), required=False,
                                      empty_label="fixed: random 512 in / 256 out, 100 prompts, rate inf")
    warmups = forms.IntegerField(min_value=0, max_value=1000, initial=5)
    repeats = forms.IntegerField(min_value=1, max_value=50, initial=3)
    tool = forms.ChoiceField(choices=BenchmarkPlan.Tool.choices, initial=BenchmarkPlan.Tool.VLLM)
    node = forms.ModelChoiceField(queryset=Node.objects.all(), required=False, to_field_name="name",
                                  empty_label="this host's node", help_text="Whose GPUs the servers start on.")


class WorkloadForm(forms.ModelForm):
    class Meta:
        model = Workload
        fields = ["name", "input_len", "output_len", "num_prompts", "request_rate", "burstiness", "max_concurrency",
                  "seed", "temperature", "backend", "extra_args"]


class ScheduleForm(forms.Form):
    day_of_week = forms.CharField(initial="sun", max_length=64)
    hour = forms.CharField(initial="4", max_length=64)
    minute = forms.CharField(initial="0", max_length=64)
    jitter_minutes = forms.IntegerField(min_value=0, max_value=720, initial=30)
    only_if_idle = forms.BooleanField(required=False, initial=True)
