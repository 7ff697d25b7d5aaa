from django import forms

from .models import ImportJob
from .services import CHUNK_SIZE_RANGE

MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class ImportStartForm(forms.Form):
    file = forms.FileField(
        help_text="CSV, XLSX or JSON (an array of objects); headers are D1 column names. "
        "ZIP: one such data file plus the photos its photo column names (relative paths)."
    )
    file_format = forms.ChoiceField(
        label="Format",
        choices=[("", "From the file name"), *ImportJob.Format.choices],
        required=False,
    )
    encoding = forms.CharField(
        required=False, max_length=40, help_text="CSV only. Blank: UTF-8 (with or without BOM); e.g. latin-1."
    )
    mode = forms.ChoiceField(choices=ImportJob.Mode.choices, initial=ImportJob.Mode.UPSERT)
    dry_run = forms.BooleanField(required=False, help_text="Validate every row and count; write no agents.")
    chunk_size = forms.IntegerField(
        min_value=CHUNK_SIZE_RANGE[0], max_value=CHUNK_SIZE_RANGE[1], initial=5000
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // 1024**2} MB.")
        if upload.size == 0:
            raise forms.ValidationError(f"{upload.name}: the file is empty.")
        return upload
