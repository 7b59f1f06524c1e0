"""Training: targets, losses, the loop (checkpoints, resume, DDP)."""
