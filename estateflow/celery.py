import os

from celery import Celery

# One default with wsgi.py and asgi.py: production. manage.py, `make run` and `make worker` name
# estateflow.settings.local explicitly.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "estateflow.settings.production")

app = Celery("estateflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
