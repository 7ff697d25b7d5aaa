"""Every admin URL that carries an id answers a malformed or unknown id without a server error."""

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db

SENTINEL = "987654321"
APPS = {"imports", "sync", "assets", "agents", "industries", "accounts"}


def _id_urls() -> list[tuple[str, str]]:
    """(url name, url with SENTINEL as the id) for every admin URL of our apps that takes one id."""
    out = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in APPS:
            continue
        for pattern in model_admin.get_urls():
            if (
                not pattern.name
                or "<" not in str(pattern.pattern)
                or str(pattern.pattern) == "<path:object_id>/"
            ):
                continue
            out.append((pattern.name, reverse(f"admin:{pattern.name}", args=[SENTINEL])))
    return out


@pytest.mark.parametrize("bad", ["abc", "import", "99999999999999999999", "1.5", "²"])
def test_malformed_ids_never_cause_a_server_error(admin_client, bad):
    urls = _id_urls()
    assert any(name == "imports_importjob_progress" for name, _ in urls)
    for name, url in urls:
        url = url.replace(SENTINEL, bad)
        # The test client re-raises a view's exception: a 500 fails here (403: a read-only admin).
        send = admin_client.post if name.endswith(("_cancel", "_resume")) else admin_client.get
        response = send(url, follow=True)
        assert response.status_code in (200, 403, 404), (name, url, response.status_code)
        if name.startswith("imports_importjob_") and not name.endswith(("_history", "_delete")):
            assert response.status_code == 404, (name, url)


def test_the_reported_url_is_a_404(admin_client):
    response = admin_client.get("/admin/imports/importjob/import/progress.json", follow=True)
    assert response.status_code == 404
    assert admin_client.get("/admin/imports/importjob/abc/change/").status_code == 404
