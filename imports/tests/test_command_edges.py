"""Command-line edges: one import path (django-import-export's `import`/`export` refuse agents) and
Ctrl-C while `import_agents` waits."""

import io

import pytest
from django.core.management import CommandError, call_command, get_commands

from agents.models import Agent
from imports.models import ImportJob

from .conftest import csv_text

pytestmark = pytest.mark.django_db


def test_import_and_export_commands_are_ours():
    commands = get_commands()
    assert commands["import"] == "imports" and commands["export"] == "imports"


@pytest.mark.parametrize(
    "target", ["agents.resources.AgentResource", "agents.Agent", "industries.IndustryConfig"]
)
def test_manage_py_import_refuses_and_points_to_import_agents(tmp_path, target):
    path = tmp_path / "bad.csv"
    path.write_text(csv_text("id,name,state", "x-1,Bypass,ZZ"))
    with pytest.raises(CommandError, match="import_agents"):
        call_command("import", target, str(path), "--no-input")
    assert not Agent.objects.exists()


@pytest.mark.parametrize("target", ["agents.resources.AgentResource", "agents.Agent"])
def test_manage_py_export_refuses_agents(target):
    with pytest.raises(CommandError, match="export them from the admin"):
        call_command("export", "CSV", target)


def test_manage_py_export_still_serves_other_models():
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    call_command("export", "CSV", "industries.IndustryConfig", stdout=out)
    out.flush()
    assert b"real_estate" in out.buffer.getvalue()


def test_ctrl_c_while_waiting_says_the_job_continues_and_exits_130(tmp_path, monkeypatch, capsys):
    """Not transactional: the job's on-commit start never fires, so it stays pending while we wait."""
    path = tmp_path / "agents.csv"
    path.write_text(csv_text("id,name,state", "c-1,Cy,CA"))

    def ctrl_c(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("imports.management.commands._progress.time.sleep", ctrl_c)
    try:
        with pytest.raises(SystemExit) as exit_info:
            call_command("import_agents", str(path))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a traceback")
    job = ImportJob.objects.get()
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert f"job {job.pk} continues in the background" in err
    assert f"import_status {job.pk}" in err
    assert not job.is_terminal
