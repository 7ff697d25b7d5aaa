"""Permission matrix: every admin page, action, JSON endpoint and download, for each role and anonymous.

Each role is tried as a new user would be: a staff user whose only
permissions come from the role's group (created by the accounts migration).
`test_every_admin_url_is_in_the_matrix` fails when an admin URL is added
without a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone

from accounts.models import AuditEvent
from agents.models import Agent
from agents.tests.factories import AgentFactory
from assets.models import AssetObject, AssetSyncRun
from exports.models import ExportJob
from imports.models import ImportJob, ImportRowError
from sync.models import SyncRun, VerifyRun
from sync.services import schedules_ensure

pytestmark = pytest.mark.django_db

ROLES = ("Viewer", "Editor", "Importer", "Operator")
ALL = frozenset(ROLES)
NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Endpoint:
    name: str  # admin URL name (without "admin:")
    allowed: frozenset[str]
    method: str = "get"
    obj: str | None = None  # key of the fixture object whose pk goes in the URL
    data: tuple = ()
    ok: int = 200  # status when allowed

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.name}"


def _model_pages(prefix: str, obj: str, *, view=ALL, add=NONE, change=NONE, delete=NONE) -> list[Endpoint]:
    return [
        Endpoint(f"{prefix}_changelist", view | change),
        Endpoint(f"{prefix}_add", add),
        Endpoint(f"{prefix}_change", view | change, obj=obj),
        Endpoint(f"{prefix}_history", view | change, obj=obj),
        Endpoint(f"{prefix}_delete", delete, obj=obj),
    ]


EDITOR = frozenset({"Editor"})
IMPORTER = frozenset({"Importer"})
OPERATOR = frozenset({"Operator"})

ENDPOINTS: list[Endpoint] = [
    Endpoint("index", ALL),
    Endpoint("app_list", ALL, obj="app:agents"),
    *_model_pages("agents_agent", "agent", add=EDITOR, change=EDITOR, delete=EDITOR),
    Endpoint("agents_agent_export", EDITOR),
    *_model_pages("industries_industryconfig", "industry", add=EDITOR, change=EDITOR, delete=EDITOR),
    # Jobs start from the import page, never from "add"; nobody deletes them from the admin.
    *_model_pages("imports_importjob", "job"),
    Endpoint("imports_importjob_start", IMPORTER),
    Endpoint("imports_importjob_progress", ALL, obj="job"),
    Endpoint("imports_importjob_rejected", ALL, obj="job"),
    # Same permission as the rejected-rows download: both come from one CSV writer.
    Endpoint("imports_importjob_warnings", ALL, obj="job"),
    Endpoint("imports_importjob_cancel", IMPORTER, method="post", obj="job", ok=302),
    Endpoint("imports_importjob_resume", IMPORTER, method="post", obj="job", ok=302),
    Endpoint("imports_importjob_rollback", OPERATOR, method="post", obj="job", ok=302),
    # Export jobs: whoever may export agents (no role holds exports.view_exportjob); read only.
    *_model_pages("exports_exportjob", "exportjob", view=EDITOR),
    Endpoint("exports_exportjob_progress", EDITOR, obj="exportjob"),
    # The fixture's job has no file yet: an allowed role gets past the permission check to a 404.
    Endpoint("exports_exportjob_download", EDITOR, obj="exportjob", ok=404),
    *_model_pages("sync_syncrun", "syncrun"),
    Endpoint("sync_syncrun_sync_now", OPERATOR, method="post", ok=302),
    Endpoint("sync_syncrun_verify_now", OPERATOR, method="post", ok=302),
    *_model_pages("sync_verifyrun", "verifyrun"),
    # The D1 and R2 schedules: fixed rows, nobody adds or deletes them; the Operator pauses and re-times.
    *_model_pages("sync_schedule", "schedule", change=OPERATOR),
    *_model_pages("assets_assetsyncrun", "assetrun"),
    *_model_pages("assets_assetobject", "assetobject"),
    *_model_pages("accounts_auditevent", "audit"),
    # Users and groups: superusers only.
    *_model_pages("auth_user", "user", view=NONE),
    Endpoint("auth_user_password_change", NONE, obj="user"),
    *_model_pages("auth_group", "group", view=NONE),
]

# Admin URLs that are not permission-gated pages: login/logout/password and generic helpers
# (view_on_site and autocomplete check permissions themselves and are covered by Django).
NOT_IN_MATRIX = {
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "jsi18n",
    "view_on_site",
    "autocomplete",
}


@pytest.fixture
def objects(db, role_user):
    agent = AgentFactory(name="Matrix Agent")
    job = ImportJob.objects.create(
        file="imports/matrix.csv",
        original_name="matrix.csv",
        format="csv",
        status=ImportJob.Status.RUNNING,
        header=["name", "email"],
        total_rows=2,
    )
    ImportRowError.objects.create(
        job=job, chunk_index=0, line=2, column="email", value="x", message="bad", raw_row=["A", "x"]
    )
    now = timezone.now()
    schedules_ensure()  # post_migrate made them; a transactional test's flush may have taken them
    return {
        "agent": agent.pk,
        "industry": "legal",
        "job": job.pk,
        "exportjob": ExportJob.objects.create(format="csv", columns=["id"]).pk,
        "syncrun": SyncRun.objects.create(started_at=now, status=SyncRun.Status.COMPLETED).pk,
        "verifyrun": VerifyRun.objects.create(started_at=now, clean=True).pk,
        "schedule": "sync-d1",
        "assetrun": AssetSyncRun.objects.create().pk,
        "assetobject": AssetObject.objects.create(
            agent_id=agent.pk,
            key="agents/x.webp",
            kind="photo",
            sha256="0" * 64,
            size=1,
            content_type="image/webp",
        ).pk,
        "audit": AuditEvent.objects.create(
            action="update", object_type="agents.agent", object_id=agent.pk, changes={"name": ["a", "b"]}
        ).pk,
        "user": role_user("Viewer").pk,
        "group": Group.objects.get(name="Viewer").pk,
        "app:agents": "agents",
    }


@pytest.fixture(autouse=True)
def _no_real_jobs(monkeypatch):
    """Allowed POSTs enqueue work; record it instead of running a sync, verify or import chunk."""
    calls = []
    import imports.admin
    import sync.admin

    monkeypatch.setattr(sync.admin.d1_sync_run_task, "delay", lambda **kw: calls.append(("sync", kw)))
    monkeypatch.setattr(sync.admin.d1_verify_task, "delay", lambda **kw: calls.append(("verify", kw)))
    monkeypatch.setattr(imports.admin, "import_job_resume", lambda **kw: calls.append(("resume", kw)) or [])
    monkeypatch.setattr(imports.admin, "import_job_cancel", lambda **kw: calls.append(("cancel", kw)) or True)
    return calls


def _url(endpoint: Endpoint, objects: dict) -> str:
    if endpoint.obj is None:
        return reverse(f"admin:{endpoint.name}")
    return reverse(f"admin:{endpoint.name}", args=[objects[endpoint.obj]])


def _admin_url_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                names.add(p.name)

    walk(admin.site.get_urls())
    return names


def test_every_admin_url_is_in_the_matrix():
    covered = {e.name for e in ENDPOINTS} | NOT_IN_MATRIX
    missing = sorted(_admin_url_names() - covered)
    assert not missing, f"admin URLs without a permission-matrix row: {missing}"


def test_every_matrix_row_is_an_admin_url():
    """A row whose URL disappeared fails here (and in its matrix tests), rather than passing unchecked."""
    gone = sorted({e.name for e in ENDPOINTS} - _admin_url_names())
    assert not gone, f"permission-matrix rows without an admin URL: {gone}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, role_user, objects, endpoint, role):
    client.force_login(role_user(role))
    url = _url(endpoint, objects)
    response = getattr(client, endpoint.method)(url, dict(endpoint.data))
    expected = endpoint.ok if role in endpoint.allowed else 403
    assert response.status_code == expected, f"{role} {endpoint.id} {url}: {response.status_code}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_anonymous_is_sent_to_login(client, objects, endpoint):
    url = _url(endpoint, objects)
    response = getattr(client, endpoint.method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_post_actions_need_csrf(role_user, objects):
    """State-changing endpoints refuse a POST without the CSRF token, even from an allowed role."""
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    for role, endpoint in (
        ("Importer", "imports_importjob_cancel"),
        ("Operator", "sync_syncrun_sync_now"),
    ):
        strict.force_login(role_user(role))
        e = next(x for x in ENDPOINTS if x.name == endpoint)
        assert strict.post(_url(e, objects)).status_code == 403


# --- admin actions -----------------------------------------------------------------------


def _changelist_actions(client) -> list[str]:
    response = client.get(reverse("admin:agents_agent_changelist"))
    form = response.context["action_form"]
    return [value for value, _ in form.fields["action"].choices if value] if form else []


@pytest.mark.parametrize(
    ("role", "expected"),
    [("Viewer", []), ("Importer", []), ("Operator", []), ("Editor", ["delete_selected"])],
)
def test_agent_actions_offered_per_role(client, role_user, objects, role, expected):
    client.force_login(role_user(role))
    assert sorted(_changelist_actions(client)) == expected


@pytest.mark.parametrize("role", ROLES)
def test_delete_action_only_for_editor(client, role_user, objects, role):
    client.force_login(role_user(role))
    url = reverse("admin:agents_agent_changelist")
    data = {"action": "delete_selected", "_selected_action": [objects["agent"]], "post": "yes"}
    client.post(url, data)
    assert Agent.objects.filter(pk=objects["agent"]).exists() is (role != "Editor")


@pytest.mark.parametrize("role", ROLES)
def test_export_download_only_for_editor(client, role_user, objects, role):
    client.force_login(role_user(role))
    data = {"format": "0", "resource": "0", "agentresourcewithoutcontacts_name": "on"}
    response = client.post(reverse("admin:agents_agent_export"), data)
    if role == "Editor":
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment")
    else:
        assert response.status_code == 403


# --- each role, end to end ---------------------------------------------------------------


def test_roles_exist_with_their_permissions(roles):
    perms = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
        for g in Group.objects.prefetch_related("permissions__content_type")
    }
    assert set(ROLES) <= perms.keys()
    assert all(p.startswith(("agents.view_", "industries.view_", "imports.view_", "sync.view_",
                             "assets.view_", "accounts.view_")) for p in perms["Viewer"])  # fmt: skip
    assert {"agents.change_agent", "industries.change_industryconfig", "agents.export_agent"} <= perms[
        "Editor"
    ]
    assert "agents.export_contacts_agent" not in set().union(*perms.values())
    assert perms["Importer"] - perms["Viewer"] == {"imports.run_import", "agents.import_agent"}
    assert perms["Operator"] - perms["Viewer"] == {
        "sync.run_sync",
        "sync.change_schedule",
        "imports.rollback_import",
    }


def test_viewer_cannot_save_an_agent(client, role_user, objects):
    client.force_login(role_user("Viewer"))
    url = reverse("admin:agents_agent_change", args=[objects["agent"]])
    response = client.post(url, {"name": "Renamed"})
    assert response.status_code == 403
    assert Agent.objects.get(pk=objects["agent"]).name == "Matrix Agent"


def test_create_role_user_command(roles):
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    out = StringIO()
    call_command("create_role_user", "olga", "--role", "Operator", "--no-password", stdout=out)
    user = get_user_model().objects.get(username="olga")
    assert user.is_staff and not user.is_superuser
    assert user.has_perm("sync.run_sync") and not user.has_perm("agents.change_agent")
    assert not user.has_usable_password()
