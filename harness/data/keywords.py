"""The keyword-spotting vocabulary of SUPERB KS (Speech Commands v0.01), shared by the corpora that
label keywords and the downstream that classifies them: the ten commands, and the two classes every
other word and background noise fall into."""

from __future__ import annotations

KEYWORD_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KEYWORD_UNKNOWN = "_unknown_"
KEYWORD_SILENCE = "_silence_"
