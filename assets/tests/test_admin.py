import json
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from agents.tests.factories import AgentFactory
from assets.models import AssetSyncRun

from .factories import image_bytes

pytestmark = pytest.mark.django_db

CHANGE = "/admin/agents/agent/{}/change/"
JSON_FIELDS = (
    "service_regions", "service_zipcodes", "secondary_specialties", "property_types", "price_ranges",
    "language_capabilities", "unique_value_props", "features", "specializations",
)  # fmt: skip


def _post_photo(admin_client, agent, upload):
    form = admin_client.get(CHANGE.format(agent.pk)).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "photo"}
    for key in JSON_FIELDS:
        data[key] = json.dumps(data[key])
    data["industry"] = agent.industry_id
    data["photo"] = upload
    return admin_client.post(CHANGE.format(agent.pk), data)


def test_valid_photo_is_stored(admin_client, media_root):
    agent = AgentFactory()
    upload = SimpleUploadedFile("me.webp", image_bytes(fmt="WEBP", size=(120, 90)), content_type="image/webp")
    response = _post_photo(admin_client, agent, upload)
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.photo.name.startswith("agents/photos/me")
    assert os.path.exists(agent.photo.path)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("renamed.jpg", b"%PDF-1.4 definitely not a photo", "Upload a valid image"),
        ("tiny.png", image_bytes(fmt="PNG", size=(20, 20)), "at least 32 px"),
        ("anim.gif", image_bytes(fmt="GIF", size=(64, 64), mode="L"), "not a supported image"),
    ],
)
def test_bad_photo_rejected_with_message(admin_client, media_root, name, data, message):
    agent = AgentFactory()
    response = _post_photo(admin_client, agent, SimpleUploadedFile(name, data, content_type="image/jpeg"))
    assert response.status_code == 200
    assert message in response.content.decode()
    agent.refresh_from_db()
    assert not agent.photo


def test_photo_over_five_megabytes_rejected(admin_client, media_root):
    noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    path = media_root.parent / "big.png"
    noise.save(path, format="PNG", compress_level=0)
    agent = AgentFactory()
    upload = SimpleUploadedFile("big.png", path.read_bytes(), content_type="image/png")
    response = _post_photo(admin_client, agent, upload)
    assert response.status_code == 200
    assert "the limit is 5 MB" in response.content.decode()


def test_sync_runs_admin_is_read_only(admin_client):
    run = AssetSyncRun.objects.create(status=AssetSyncRun.Status.COMPLETED, objects_put=3, reason="test")
    assert admin_client.get("/admin/assets/assetsyncrun/").status_code == 200
    assert admin_client.get(f"/admin/assets/assetsyncrun/{run.pk}/change/").status_code == 200
    assert admin_client.get("/admin/assets/assetsyncrun/add/").status_code == 403
    assert admin_client.post(f"/admin/assets/assetsyncrun/{run.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/assets/assetobject/").status_code == 200
