"""Forms of the classifier pages. They parse what was typed; the services check the rules."""
from django import forms
from django.conf import settings

from classifier import evaluation, selectors
from classifier.embedding import embedders
from sparkportal.exceptions import ValidationFailed


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one <input type=file multiple> (Django's documented recipe)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)] if data else []


def _embedder_choices() -> list[tuple[str, str]]:
    return [(key, key) for key in sorted(embedders.available())]


def _labeled_csv(form: forms.Form) -> str:
    """The labeled CSV from the uploaded file, else from the text box."""
    upload = form.cleaned_data.get("labeled_file")
    if upload:
        raw = upload.read(evaluation.MAX_LABELED_CSV_BYTES + 1)
        if len(raw) > evaluation.MAX_LABELED_CSV_BYTES:
            form.add_error("labeled_file", f"{upload.name} is larger than "
                                           f"{evaluation.MAX_LABELED_CSV_BYTES // 2**20} MB: label a sample of it.")
            return ""
        try:
            return evaluation.decode_labeled_csv(raw, name=upload.name)
        except ValidationFailed as exc:
            form.add_error("labeled_file", exc.message)
            return ""
    text = form.cleaned_data.get("labeled_text", "")
    if not text.strip():
        form.add_error("labeled_text", "Upload a labeled CSV or paste its rows: path or text, expected code.")
    return text


class LabeledCsvFields(forms.Form):
    labeled_file = forms.FileField(required=False, allow_empty_file=True, label="Labeled CSV file")
    labeled_text = forms.CharField(required=False, strip=False, label="or paste rows",
                                   widget=forms.Textarea(attrs={"rows": 5, "cols": 80, "placeholder":
                                                                "path or text,expected code\n"
                                                                "/archive/scans/receipt-0412.pdf,10.06\n"
                                                                "Rechnung Strom März,10.02"}))

    def clean(self):
        data = super().clean()
        data["labeled_csv"] = _labeled_csv(self)
        return data


class JobForm(forms.Form):
    SOURCES = [("folder", "Folder under an archive root"), ("upload", "Upload files or a .zip")]

    taxonomy = forms.ChoiceField()
    source = forms.ChoiceField(choices=SOURCES, initial="folder", widget=forms.RadioSelect)
    path = forms.CharField(required=False, max_length=1000)
    files = MultipleFileField(required=False, allow_empty_file=True)
    depth = forms.IntegerField(min_value=1, max_value=3, initial=2)
    embedder = forms.ChoiceField()
    margin = forms.FloatField(required=False, min_value=0, max_value=1)
    rerank_model = forms.CharField(required=False, max_length=200)
    include = forms.CharField(required=False)
    exclude = forms.CharField(required=False)
    shared = forms.BooleanField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["taxonomy"].choices = [(t.name, t.name) for t in selectors.taxonomy_list(user=user)]
        self.fields["embedder"].choices = _embedder_choices()
        self.fields["embedder"].initial = settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER

    def clean(self):
        data = super().clean()
        if data.get("source") == "folder" and not data.get("path", "").strip():
            self.add_error("path", "Give the full path of a folder under the archive roots.")
        if data.get("source") == "upload" and not data.get("files"):
            self.add_error("files", "Choose at least one file or a .zip to upload.")
        return data

    def options(self) -> dict:
        """The job settings, as services.job_create takes them."""
        data = self.cleaned_data
        return {"depth": data["depth"], "embedder": data["embedder"], "margin": data["margin"],
                "rerank_model": data["rerank_model"], "include": data["include"], "exclude": data["exclude"],
                "shared": data["shared"]}


class CalibrationForm(LabeledCsvFields):
    embedder = forms.ChoiceField()
    depth = forms.IntegerField(min_value=1, max_value=3, initial=2)
    target = forms.FloatField(min_value=1, max_value=100, initial=95, label="Target precision (%)",
                              help_text="Files taken without the LLM must be at least this often right.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["embedder"].choices = _embedder_choices()
        self.fields["embedder"].initial = settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER


class MarginOverrideForm(forms.Form):
    embedder = forms.CharField()
    depth = forms.IntegerField(min_value=1, max_value=3)
    margin = forms.FloatField(min_value=0, max_value=1, error_messages={
        "invalid": "The margin is a decimal number between 0 and 1, e.g. 0.02."})


class EvaluationSideForm(forms.Form):
    """One setting of a side-by-side evaluation (used twice, with prefixes a and b)."""

    version = forms.TypedChoiceField(coerce=int, label="Label text (taxonomy version)")
    embedder = forms.ChoiceField()
    depth = forms.IntegerField(min_value=1, max_value=3, initial=2)
    margin = forms.FloatField(required=False, min_value=0, max_value=1,
                              widget=forms.NumberInput(attrs={"step": "any", "placeholder": "calibrated or default"}))
    rerank_model = forms.CharField(required=False, max_length=200,
                                   widget=forms.TextInput(attrs={"placeholder": "empty: no rerank"}))
    use_examples = forms.BooleanField(required=False, label="Use labeled examples (off: zero-shot)")

    def __init__(self, *args, taxonomy, **kwargs):
        super().__init__(*args, **kwargs)
        versions = list(taxonomy.versions.order_by("-number"))
        self.fields["version"].choices = [(v.number, f"v{v.number}" + (f" ({v.note})" if v.note else ""))
                                          for v in versions]
        self.fields["version"].initial = versions[0].number if versions else None
        self.fields["embedder"].choices = _embedder_choices()
        self.fields["embedder"].initial = settings.PORTAL_CLASSIFIER_DEFAULT_EMBEDDER
        self.fields["rerank_model"].initial = settings.PORTAL_CLASSIFIER_LLM_MODEL
        # Side by side by default: labels alone (a) against labels with the taxonomy's examples (b).
        self.fields["use_examples"].initial = self.prefix != "a"

    def side(self) -> dict:
        return dict(self.cleaned_data)
