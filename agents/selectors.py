"""Reads over agents."""

from django.db import connection

from .models import Agent


def agents_table_checksum() -> dict:
    """md5 over every row of `agents` (every column) in id order, plus the row count.

    Equal checksums mean equal tables, so a test or an operator can prove
    that a rollback put the table back exactly as it was.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), coalesce(md5(string_agg(md5(a::text), '' ORDER BY a.id)), md5('')) FROM agents a"
            )
            rows, digest = cursor.fetchone()
        return {"rows": rows, "md5": digest}
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    rows = 0
    for values in Agent.objects.order_by("id").values_list().iterator():
        digest.update(repr(values).encode())
        rows += 1
    return {"rows": rows, "md5": digest.hexdigest()}
