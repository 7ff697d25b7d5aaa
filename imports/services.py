"""Import jobs: the public entry points, re-exported from the modules that hold them.

- imports.planning: create a job, read its file once and cut it into chunks;
- imports.chunks: one chunk's work (rows, journal, row errors);
- imports.lifecycle: the job in the chunked-job engine (jobs.runner): start,
  process, fail, finalize, cancel, resume, recover.

Counts of a job are always the sum of its chunks' counts, each written in
the same transaction as the chunk's rows; so a chunk processed twice, or
in any order, can never count or write anything twice.
"""

from .lifecycle import (
    IMPORT_JOBS,
    import_chunk_fail,
    import_chunk_process,
    import_chunks_enqueue,
    import_job_cancel,
    import_job_fail,
    import_job_finalize,
    import_job_resume,
    import_job_start,
    import_jobs_recover,
)
from .planning import (
    CHUNK_SIZE_RANGE,
    FORMATS_BY_EXTENSION,
    REQUIRED_FOR_CREATE,
    ImportRequestError,
    import_format_guess,
    import_job_create,
    import_job_plan,
)

__all__ = [
    "CHUNK_SIZE_RANGE",
    "FORMATS_BY_EXTENSION",
    "IMPORT_JOBS",
    "REQUIRED_FOR_CREATE",
    "ImportRequestError",
    "import_chunk_fail",
    "import_chunk_process",
    "import_chunks_enqueue",
    "import_format_guess",
    "import_job_cancel",
    "import_job_create",
    "import_job_fail",
    "import_job_finalize",
    "import_job_plan",
    "import_job_resume",
    "import_job_start",
    "import_jobs_recover",
]
