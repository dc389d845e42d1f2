"""The run logger: wandb's ``init``/``log``/``alert``/``finish`` over the embedded store.

Imports nothing from a server package: a training script pays only for what it uses.
"""
