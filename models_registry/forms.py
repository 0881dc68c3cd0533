import json

from django import forms

from models_registry.models import ModelProfile

FORM_FIELDS = ["name", "source", "repo_id", "revision", "local_path", "engine", "served_model_name", "task", "dtype",
               "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "pipeline_parallel_size",
               "node_count", "distributed_backend", "quantization", "kv_cache_dtype", "enable_prefix_caching",
               "max_num_seqs", "enable_sleep_mode",
               "extra_flags", "extra_env", "ignore_patterns", "notes"]


class ProfileForm(forms.ModelForm):
    """Shapes the input; the rules (and their messages) live in services.profile_problems."""

    extra_env = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                help_text='JSON object, e.g. {"VLLM_USE_V1": "1"}')
    ignore_patterns = forms.CharField(required=False, help_text="Comma-separated globs; empty = the defaults "
                                                                "(original/*, *.pth, ...)")
    gpu_memory_utilization = forms.FloatField(help_text="Fraction of GPU memory vLLM takes, in (0, 1].")
    max_model_len = forms.IntegerField(required=False)
    max_num_seqs = forms.IntegerField(required=False)
    tensor_parallel_size = forms.IntegerField(initial=1)
    pipeline_parallel_size = forms.IntegerField(initial=1)
    node_count = forms.IntegerField(initial=1, help_text="Nodes the model spans (vLLM's multi-node launch); "
                                                          "tensor x pipeline parallel GPUs split evenly over them.")
    distributed_backend = forms.ChoiceField(
        choices=[("mp", "mp (vLLM's multiprocessing launch)"), ("ray", "ray (a Ray cluster across the nodes)")],
        initial="mp", required=False, help_text="How the ranks of a model across nodes run; ignored on one node.")
    name = forms.CharField(max_length=100)

    class Meta:
        model = ModelProfile
        fields = FORM_FIELDS
        widgets = {"notes": forms.Textarea(attrs={"rows": 3}), "extra_flags": forms.TextInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["extra_env"] = json.dumps(self.instance.extra_env or {})
            self.initial["ignore_patterns"] = ", ".join(self.instance.ignore_patterns or [])

    def clean_extra_env(self):
        raw = (self.cleaned_data.get("extra_env") or "").strip()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f'Extra environment is not valid JSON ({exc}): write e.g. {{"NAME": "value"}}.'
                                        ) from exc

    def clean_distributed_backend(self):
        return self.cleaned_data.get("distributed_backend") or "mp"

    def clean_ignore_patterns(self):
        raw = self.cleaned_data.get("ignore_patterns") or ""
        return [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]

    def _post_clean(self):
        pass  # the services validate (and say why); the model's own checks would duplicate them

    def data_for_service(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k in FORM_FIELDS}
