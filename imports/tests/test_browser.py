"""A staff user's whole import in a real browser: Playwright driving Chromium.

Against Django's live server and a real Celery worker process: log in,
upload a CSV, watch the progress bar reach 100%, read the counts, download
the rejected rows, roll the import back. Screenshots go to test-artifacts/.
"""

import csv
import io
import os
import shutil
from pathlib import Path

import pytest

from agents.models import Agent

# Slow like every test that starts a real worker (and this one a Chromium too).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.browser,
    pytest.mark.slow,
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path(playwright) -> str | None:
    """The browser `make test` provisioned (scripts/browser.sh), else the system's, else Playwright's own."""
    for path in (
        os.environ.get("ESTATEFLOW_CHROMIUM"),
        shutil.which("chromium"),
        playwright.chromium.executable_path,
    ):
        if path and os.path.exists(path):
            return path
    return None


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = chromium_path(playwright)
        if chromium is None:
            pytest.skip("no Chromium: none installed and none could be provisioned (see scripts/browser.sh)")
        # Playwright's sync API runs an event loop in this thread; the ORM calls
        # the test makes between page steps are still plain synchronous ones.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        context.close()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_staff_user_imports_watches_progress_downloads_rejects_and_rolls_back(
    live_server, workers, generated_csv, browser_page, tmp_path
):
    from django.contrib.auth.models import Group, User

    from agents.generator import invalid_count

    user = User.objects.create_user("operator", password="a-long-test-password", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=["Importer", "Operator"]))
    if not user.groups.exists():  # roles migration absent: grant the two permissions directly
        from django.contrib.auth.models import Permission

        user.user_permissions.add(*Permission.objects.filter(
            codename__in=["view_importjob", "run_import", "rollback_import", "view_agent"]))  # fmt: skip
    rows, rate = 4000, 0.01
    path = generated_csv(rows, seed=21, invalid_rate=rate)
    invalid = invalid_count(count=rows, invalid_rate=rate)
    workers("w1", concurrency=2)
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.screenshot(path=ARTIFACTS / "01-dashboard.png", full_page=True)

    page.goto(f"{live_server.url}/admin/imports/importjob/start/")
    page.set_input_files("#id_file", str(path))
    page.fill("#id_chunk_size", "200")
    page.screenshot(path=ARTIFACTS / "02-upload-form.png")
    page.click("input[name=_start]")
    page.wait_for_selector("#ef-progressbar")
    page.screenshot(path=ARTIFACTS / "03-progress-started.png")
    # The page polls progress.json; it reloads itself once the job has ended.
    page.wait_for_function(
        "document.querySelector('#ef-progressbar').getAttribute('aria-valuenow') === '100.0'", timeout=120_000
    )
    page.wait_for_function(
        "document.querySelector('#ef-status').textContent.trim() === 'completed_with_errors'", timeout=60_000
    )
    page.wait_for_selector("#ef-rejected-download")
    page.screenshot(path=ARTIFACTS / "04-progress-complete.png", full_page=True)
    created = int(page.inner_text("#ef-created").replace(",", ""))
    failed = int(page.inner_text("#ef-failed").replace(",", ""))
    assert (created, failed) == (rows - invalid, invalid)
    assert Agent.objects.count() == rows - invalid

    with page.expect_download() as download_info:
        page.click("#ef-rejected-download")
    download_path = tmp_path / "rejected.csv"
    download_info.value.save_as(download_path)
    rejected = list(csv.reader(io.StringIO(download_path.read_text(encoding="utf-8-sig"))))
    assert rejected[0][-1] == "error" and len(rejected) == invalid + 1
    assert all(row[-1].startswith("line ") for row in rejected[1:])

    page.click("#ef-rollback")
    page.wait_for_selector("#rb-confirm")
    page.screenshot(path=ARTIFACTS / "05-rollback-confirm.png", full_page=True)
    page.click("#rb-confirm")
    page.wait_for_function(
        "document.querySelector('#ef-rb-status') && document.querySelector('#ef-rb-status').textContent.trim() === 'completed'",
        timeout=120_000,
    )
    page.screenshot(path=ARTIFACTS / "06-rolled-back.png", full_page=True)
    assert Agent.objects.count() == 0
