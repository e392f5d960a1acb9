"""Executors: how ready stages get run — in this process (:mod:`.local`) or as Ray tasks (:mod:`.ray`).
Every executor calls the same :func:`harness.pipeline.execute.execute_stage`."""
