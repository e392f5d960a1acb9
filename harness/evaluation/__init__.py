"""Evaluation: task building blocks and metrics, the frozen-upstream probe, the CTC probe protocol,
ABX and the SUPERB score. Imports core, data, models and training."""
