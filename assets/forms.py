"""Form pieces the Agent admin borrows to validate photo uploads."""

from django import forms
from django.core.files.uploadedfile import UploadedFile

from .validators import agent_photo_validate


class AgentPhotoAdminForm(forms.ModelForm):
    """Base form for AgentAdmin: validates a newly uploaded photo with Pillow.

    No Meta on purpose: ModelAdmin builds the model form on top of this base,
    so the admin's fields and fieldsets stay the single source of truth.
    """

    def clean_photo(self):
        photo = self.cleaned_data.get("photo")
        # Only a new upload is checked; the already stored photo (a FieldFile)
        # and a cleared field (False) pass through unchanged.
        if isinstance(photo, UploadedFile):
            agent_photo_validate(photo)
        return photo
