"""Running a plan: one stage at a time (:mod:`.execute`), the whole plan with progress and the
results store (:mod:`.run`), and the executors (local, Ray). Imports every layer below the report."""
