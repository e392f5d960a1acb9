"""Speech models: the wav2vec 2.0 family on transformers, DeCoAR 2.0 pieces, checkpoint and fairseq
loading (no code execution), FBank, the SUPERB featurizer, batched inference and the feature cache.
Imports :mod:`harness.core` and :mod:`harness.data`."""
