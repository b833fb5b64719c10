"""Training: datasets, losses, the one training loop for both tasks, checkpoints (imports torch)."""
