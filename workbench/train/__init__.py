"""The Trainer loop, schedules and checkpoints.

``STOP`` is set by SIGTERM. A background job installs the handler before importing torch,
so a stop that arrives while the job is still starting is honoured at the first step.
"""
import threading

STOP = threading.Event()
