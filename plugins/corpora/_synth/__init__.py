"""Internals of the ``synthetic`` corpus plugin: espeak-ng through ctypes, the phone mapping, the
sentence templates, nuisance, one-utterance rendering and the render servers.

Kept apart from :mod:`plugins.corpora.synthetic` so that the render servers import only numpy,
scipy, soundfile and soxr (not torch): forking a small process per utterance is cheap.
"""
