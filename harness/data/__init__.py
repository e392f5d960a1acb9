"""Audio and corpora: reading and checking audio, corpus preparation helpers, phones, batching of
waveforms, AudioSet files and procedural sounds. Imports :mod:`harness.core` only."""
