"""Merging fine-tuned models with their pre-trained weights: the task-arithmetic family
(:mod:`harness.merging.task_vectors`; linear, TIES and sequential are configurations of it) and
the streaming engine over safetensors files (:mod:`harness.merging.engine`).
Imports core, data and models."""
