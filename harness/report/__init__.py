"""Reporting: statistics (intervals, paired tests), plots and the leaderboard. Imports every layer
below it, never the pipeline or the CLI."""
