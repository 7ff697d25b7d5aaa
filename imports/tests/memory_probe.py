"""Peak memory of importing one file, measured in a process of its own (issue 12, finding 4).

    DJANGO_SETTINGS_MODULE=estateflow.settings.test DATABASE_URL=postgres://.../MIGRATED_DB \\
        python -m imports.tests.memory_probe FILE [--chunks]

plans FILE as an import job (and with --chunks also runs its chunks) and
prints one JSON line: status, error, warnings, and the process's resident
memory before planning, at its peak after planning (VmHWM) and, with
--chunks, at its peak after the chunks. `python -m imports.tests.memory_probe --cases DIR`
writes the hostile files of finding 4 into DIR and measures each one.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

LIMIT_MB = 300


def _vm(field: str) -> float:
    """A /proc/self/status memory field (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def probe(path: str, *, chunks: bool) -> dict:
    import django

    django.setup()
    from django.core.files import File

    from imports.services import import_chunk_process, import_job_create, import_job_finalize, import_job_plan

    before = _vm("VmRSS")
    with open(path, "rb") as handle:
        job = import_job_create(file=File(handle), original_name=Path(path).name, start=False)
    import_job_plan(job_id=job.pk)
    after_plan = _vm("VmHWM")
    if chunks:
        for index in job.chunks.order_by("index").values_list("index", flat=True):
            import_chunk_process(job_id=job.pk, chunk_index=index)
        import_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    return {
        "status": job.status,
        "error": job.error_message[:300],
        "warnings": [w[:200] for w in job.warnings],
        "rows": job.total_rows,
        "failed_rows": job.failed_rows,
        "rss_before_mb": round(before, 1),
        "peak_after_plan_mb": round(after_plan, 1),
        "peak_after_chunks_mb": round(_vm("VmHWM"), 1) if chunks else None,
    }


def measure(path: Path, *, chunks: bool = False, env: dict | None = None) -> dict:
    """Run the probe on `path` in a child process (the caller's environment plus `env`)."""
    command = [sys.executable, "-m", "imports.tests.memory_probe", str(path)] + (
        ["--chunks"] if chunks else []
    )
    out = subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the hostile files of finding 4 -----------------------------------------------------


_SHEET_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def _si(value) -> str:
    """A shared string: text, or a tuple of rich-text runs."""
    if isinstance(value, tuple):
        return "<si>" + "".join(f"<r><rPr><b/></rPr><t>{escape(run)}</t></r>" for run in value) + "</si>"
    return f"<si><t>{escape(value)}</t></si>"


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def xlsx_shared_strings(out, rows, extra=()) -> None:
    """Write an XLSX as Excel does, every cell a shared string (openpyxl writes inline strings).

    `out` is a path or a binary file; `extra` texts (an iterable) are appended
    to the shared-string table without any cell using them.
    """
    table: dict = {}
    cells = []
    for r, row in enumerate(rows, start=1):
        refs = []
        for c, value in enumerate(row):
            index = table.setdefault(value, len(table))
            refs.append(f'<c r="{_column(c)}{r}" t="s"><v>{index}</v></c>')
        cells.append(f'<row r="{r}">{"".join(refs)}</row>')
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.sharedStrings+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0"?><workbook {_SHEET_NS} xmlns:r="{_REL}"><sheets>'
            '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0"?><worksheet {_SHEET_NS}><sheetData>{"".join(cells)}</sheetData></worksheet>',
        )
        with archive.open("xl/sharedStrings.xml", "w") as part:
            part.write(f'<?xml version="1.0"?><sst {_SHEET_NS}>'.encode())
            part.write("".join(_si(v) for v in table).encode())
            block = []
            for text in extra:
                block.append(_si(text))
                if len(block) == 10_000:
                    part.write("".join(block).encode())
                    block = []
            part.write("".join(block).encode() + b"</sst>")


def xlsx_shared_strings_bomb(path: Path, strings: int) -> Path:
    """A small XLSX whose shared-string table holds `strings` short texts, compressed ~140x.

    Just under the zip-bomb ratio xlsx_check_archive refuses (200x): one text in
    100 is random so the part does not compress like a bomb.
    """
    noise = random.Random(12)
    extra = (f"{noise.getrandbits(32):08x}" if i % 100 == 0 else "a" for i in range(strings - 6))
    xlsx_shared_strings(path, [["id", "name", "state"], ["x-1", "X", "CA"]], extra)
    return path


def json_distinct_keys(path: Path, objects: int) -> Path:
    """A JSON array whose every object carries a key no other object has."""
    items = [
        json.dumps({"id": f"k-{i}", "name": f"Agent {i}", "state": "CA", f"custom_field_{i}": "v"})
        for i in range(objects)
    ]
    path.write_text("[" + ",\n".join(items) + "]")
    return path


def json_early_syntax_error(path: Path, size_mb: int) -> Path:
    """A big JSON file with a syntax error at byte 10."""
    item = json.dumps({"id": "s", "name": "Agent", "state": "CA", "bio": "x" * 200}).encode()
    with open(path, "wb") as out:
        out.write(b'[{"id": x, "name": "A", "state": "CA"}')
        for _ in range(size_mb * 1024 * 1024 // (len(item) + 2)):
            out.write(b",\n" + item)
        out.write(b"]")
    return path


def csv_long_row(path: Path, fields: int, field_bytes: int) -> Path:
    """A CSV with one row of `fields` small fields (fields x field_bytes bytes) between good rows."""
    with open(path, "wb") as out:
        out.write(b"id,name,state\nl-1,Ann,CA\nl-2,Bob,")
        cell = b"y" * (field_bytes - 1)
        for _ in range(fields // 10_000):
            out.write((b"," + cell) * 10_000)
        out.write(b"\nl-3,Cy,TX\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", nargs="?")
    parser.add_argument("--chunks", action="store_true", help="also run the chunks (a worker's peak)")
    parser.add_argument(
        "--cases", metavar="DIR", help="write the hostile files of finding 4 into DIR and measure"
    )
    args = parser.parse_args()
    if not args.cases:
        print(json.dumps(probe(args.file, chunks=args.chunks)))
        return
    folder = Path(args.cases)
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "xlsx, 28,000,000 shared strings": xlsx_shared_strings_bomb(folder / "strings.xlsx", 28_000_000),
        "json, 15,000 objects with distinct keys": json_distinct_keys(folder / "keys.json", 15_000),
        "json, 100 MB, syntax error at byte 10": json_early_syntax_error(folder / "early.json", 100),
        "csv, one 50 MB row of 500,000 fields": csv_long_row(folder / "long.csv", 500_000, 100),
    }
    for label, path in cases.items():
        result = measure(path, chunks=True)
        print(f"{label} ({path.stat().st_size:,} bytes): {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
