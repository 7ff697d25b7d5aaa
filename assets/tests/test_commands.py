import io
import json

import pytest
from django.core.management import call_command

from assets.models import AssetSyncRun
from assets.services import r2_sync_request
from assets.tasks import r2_sync_run_task

from .factories import AgentWithPhotoFactory

pytestmark = pytest.mark.django_db


def test_sync_assets_command_json_and_dry_run(r2):
    AgentWithPhotoFactory.create_batch(2)
    out = io.StringIO()
    call_command("sync_assets", "--dry-run", "--json", stdout=out)
    dry = json.loads(out.getvalue())
    assert dry["dry_run"] is True and dry["objects_put"] == 4 and dry["status"] == "completed"

    out = io.StringIO()
    call_command("sync_assets", "--json", stdout=out)
    real = json.loads(out.getvalue())
    assert (real["objects_put"], real["objects_skipped"], real["agents_updated"]) == (4, 0, 2)
    assert real["bytes_put"] > 0 and real["duration_seconds"] is not None

    out = io.StringIO()
    call_command("sync_assets", stdout=out)
    assert "put 0 (0 bytes), skipped 4" in out.getvalue()


def test_sync_request_enqueues_the_named_task(r2):
    AgentWithPhotoFactory()
    assert r2_sync_run_task.name == "assets.r2_sync_run"
    r2_sync_request(reason="photo uploaded")  # eager in tests: runs in-process
    run = AssetSyncRun.objects.get()
    assert (run.reason, run.status, run.objects_put) == ("photo uploaded", "completed", 2)
    # Redelivery of the same message is a no-op.
    r2_sync_run_task.apply(kwargs={"run_id": run.pk}).get()
    assert AssetSyncRun.objects.count() == 1


def test_beat_call_without_arguments_creates_a_run(r2):
    r2_sync_run_task.apply().get()
    assert AssetSyncRun.objects.get().reason == "beat"


def test_sync_assets_exits_2_when_a_photo_could_not_be_pushed(r2, media_root):
    AgentWithPhotoFactory()
    bad = AgentWithPhotoFactory()
    with open(bad.photo.path, "wb") as handle:
        handle.write(b"this is not an image at all")
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_assets", stdout=io.StringIO(), stderr=io.StringIO())
    assert exit_info.value.code == 2
    assert AssetSyncRun.objects.latest("id").status == AssetSyncRun.Status.PARTIAL
