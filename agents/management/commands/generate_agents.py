"""`manage.py generate_agents N --out PATH`: deterministic agent files for import tests and benchmarks."""

import argparse

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

from agents.generator import (
    DEFAULT_SEED,
    FORMATS,
    INVALID_KINDS,
    MAX_COUNT,
    XLSX_MAX_DATA_ROWS,
    agent_file_write,
    agent_rows_generate,
    format_for_path,
)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's formatter, but keep the epilog's line breaks."""


def _epilog() -> str:
    width = max(len(k.kind) for k in INVALID_KINDS)
    lines = [
        "Invalid rows (--invalid-rate): each breaks exactly one rule; kinds cycle in this order:",
        *(f"  {k.kind:<{width}}  column {k.column}: {k.description}" for k in INVALID_KINDS),
        "",
        "The same N, --seed, --invalid-rate and --format give byte-identical output.",
        "A summary line (rows written, invalid rows, path) goes to stderr.",
    ]
    return "\n".join(lines)


class _StdoutStream:
    """File-like adapter: csv/json writers call write(); OutputWrapper must not add newlines."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> int:
        self._wrapper.write(text, ending="")
        return len(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_COUNT}, got {text}")
    return value


class Command(BaseCommand):
    help = (
        "Write N realistic agent rows (all six industries, all 56 state codes) to a CSV, XLSX or "
        "JSON file, streaming, deterministically, optionally with a share of invalid rows."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", _epilog())
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("count", type=_count, help="Number of agent rows to write.")
        parser.add_argument(
            "--out", required=True, help="Output path, or '-' for stdout (csv and json only)."
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed (default 42).")
        parser.add_argument(
            "--invalid-rate",
            type=_rate,
            default=0.0,
            help="Share of rows (0..1, default 0) that break exactly one rule each; see below.",
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="Output format; default from the --out extension, else csv.",
        )

    def handle(self, *args, count, out, seed, invalid_rate, format, **options):
        fmt = format_for_path("" if out == "-" else out, format)
        if fmt == "xlsx" and out == "-":
            raise CommandError("XLSX cannot be written to stdout; give --out a file path.")
        if fmt == "xlsx" and count > XLSX_MAX_DATA_ROWS:
            raise CommandError(f"XLSX holds at most {XLSX_MAX_DATA_ROWS:,} data rows; use csv or json.")

        rows = agent_rows_generate(count=count, seed=seed, invalid_rate=invalid_rate)
        target = _StdoutStream(self.stdout) if out == "-" else out
        try:
            summary = agent_file_write(rows=rows, out=target, fmt=fmt)
        except OSError as exc:
            raise CommandError(f"Could not write {out}: {exc}") from exc
        self.stderr.write(summary.line("stdout" if out == "-" else out), style_func=lambda text: text)
