import json

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from agents.models import Agent
from imports.models import ImportJob
from imports.services import import_job_create, import_job_plan

from .conftest import csv_text

# Transactional: the command waits for its job, so on_commit must fire at real commits.
pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args):
    code = 0
    try:
        call_command(*args)
    except SystemExit as exc:
        code = exc.code
    return code


def test_import_agents_json_summary_and_exit_codes(tmp_path, capsys):
    path = tmp_path / "agents.csv"
    path.write_text(csv_text("id,name,state", "c-1,Cy,CA", "c-2,Di,ZZ"))
    code = _run("import_agents", str(path), "--json", "--chunk-size", "100")
    summary = json.loads(capsys.readouterr().out)
    assert code == 2
    assert summary["status"] == "completed_with_errors"
    assert (summary["total_rows"], summary["created"], summary["failed"]) == (2, 1, 1)
    assert summary["errors"] == [{"line": 3, "column": "state", "message": summary["errors"][0]["message"]}]
    assert "ZZ" in summary["errors"][0]["message"]

    path.write_text(csv_text("id,name,state", "c-1,Cy,CA"))
    assert _run("import_agents", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 1

    path.write_text("id,name\n1,x\n")
    assert _run("import_agents", str(path), "--json") == 1
    assert "missing required column" in json.loads(capsys.readouterr().out)["error_message"]


def test_dry_run_and_status(tmp_path, capsys):
    path = tmp_path / "agents.csv"
    path.write_text(csv_text("id,name,state", "c-1,Cy,CA"))
    assert _run("import_agents", str(path), "--dry-run") == 0
    assert "dry run" in capsys.readouterr().out
    assert not Agent.objects.exists()
    job = ImportJob.objects.get()
    assert _run("import_status", str(job.pk), "--json") == 0
    assert json.loads(capsys.readouterr().out)["created"] == 1


def test_cancel_and_resume_commands(capsys):
    job = import_job_create(file=ContentFile(csv_text("id,name,state", "c-1,Cy,CA").encode()),
                            original_name="a.csv", start=False)  # fmt: skip
    import_job_plan(job_id=job.pk)
    assert _run("import_cancel", str(job.pk)) == 0
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert _run("import_resume", str(job.pk)) == 0
    job.refresh_from_db()
    assert job.status == ImportJob.Status.COMPLETED  # eager: the chunk ran during resume
    assert Agent.objects.filter(pk="c-1").exists()
