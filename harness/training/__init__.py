"""Training: the one training loop, the GPU thermal guard, stable fine-tuning, pseudo-labels for
masked prediction and SpecAugment. Imports core, data and models."""
