"""The chunked-job engine: one state machine for every job cut into chunks.

An import, its rollback, and the jobs to come (the D1 pull, background
exports) are all the same machine: a job row, chunk rows that are each done
in one transaction together with their done-mark, bounded retries, a job
counted as the sum of its done chunks, and a recovery sweep for chunks whose
worker died. This package holds that machine once; a kind of job supplies
only its models, its `process_chunk` step, its counters and what happens
when it ends.

Why a top-level package and not `imports/jobs/`: the kinds live in several
apps (imports today, sync and agents next), and none should import another
app to get the engine. It is not a Django app: its models are abstract, so
it has no tables, migrations or settings of its own.

- `jobs.models`: `ChunkedJob`, `JobChunk`, `TimedJobChunk` (abstract) and
  their QuerySets.
- `jobs.policy`: the one retry and time-limit policy.
- `jobs.runner`: `ChunkedJobRunner` (begin, process, fail, finalize, cancel,
  resume, recover) and the registry the recovery sweep walks.
- `jobs.tasks`: `chunk_task()`, the factory of every chunk task, and the
  sweep at worker start.
"""
