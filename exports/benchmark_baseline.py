"""The export benchmark's baseline in a process of its own: `python -m exports.benchmark_baseline FORMAT ROWS`.

What the agent Export button did before exports/: django-import-export inside
the request, `AgentResource().export()` into a tablib Dataset, then the
format's `export_data`, on the first ROWS agents by id. A fresh process, so
its peak RSS (VmHWM) is the export's own, measured as the workers' are.
Prints one JSON object.
"""

import json
import sys
import time


def _peak_mb() -> float | None:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def baseline_measure(*, file_format: str, rows: int) -> dict:
    from import_export.formats.base_formats import CSV, JSON, XLSX

    from agents.models import Agent
    from agents.resources import AgentResource

    formats = {"csv": CSV, "xlsx": XLSX, "json": JSON}
    first = Agent.objects.order_by("pk").values_list("pk", flat=True)[:rows]
    queryset = Agent.objects.filter(pk__in=first).select_related("industry")
    started = time.perf_counter()
    dataset = AgentResource().export(queryset=queryset)
    formats[file_format]().export_data(dataset)
    seconds = time.perf_counter() - started
    return {
        "baseline_rows": len(dataset),
        "baseline_seconds": round(seconds, 2),
        "baseline_rows_per_second": round(len(dataset) / seconds, 1),
        "baseline_peak_mb": _peak_mb(),
    }


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(baseline_measure(file_format=sys.argv[1], rows=int(sys.argv[2]))))
