"""Merging fine-tuned models with their pre-trained weights, streamed over safetensors files.
Imports core, data and models."""
