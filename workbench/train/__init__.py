"""The Trainer loop, schedules and checkpoints."""
