"""Exports on a bucket (moto's S3 server): parts and file in IMPORT_STORAGE_BUCKET, a signed download link."""

import urllib.request

import pytest
from django.urls import reverse

from agents.tests.factories import AgentFactory
from assets.tests.conftest import moto_endpoint  # noqa: F401 - fixture
from imports.tests.test_shared_storage import _keys, bucket  # noqa: F401 - fixture

from .factories import export_background

pytestmark = pytest.mark.django_db


def test_parts_and_file_live_in_the_bucket_and_the_download_is_a_signed_link(client, editor, bucket):  # noqa: F811
    AgentFactory.create_batch(5)
    job, stored = export_background(user=editor, file_format="csv", chunk_size=2)
    # Parts were written to and read back from the bucket, then deleted; only the file is left.
    assert _keys(bucket["endpoint"], bucket["name"]) == {job.file}
    client.force_login(editor)
    response = client.get(reverse("admin:exports_exportjob_download", args=[job.pk]))
    assert response.status_code == 302
    link = response["Location"]
    assert link.startswith(bucket["endpoint"]) and "Signature=" in link and "Expires=" in link
    with urllib.request.urlopen(link) as fetched:  # noqa: S310 - the test's own moto server
        assert fetched.read() == stored
        assert fetched.headers["Content-Disposition"].startswith('attachment; filename="agents-')
