"""The leaderboard: a view model built from a results store, and its text and HTML renderings."""
