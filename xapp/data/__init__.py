"""Synthetic radio task suite: labelled frames for every task the xApp serves, plus IO.

    from xapp.data import generate, pretrain_mixture, TASKS
    d = generate("modulation", 1000, seed=0)   # TaskData: x complex64 [1000, 1, 1024], y, classes, snr_db, meta
"""

from .base import DataError, DataFormatError, TaskData, TaskSpec
from .tasks import PRETRAIN_TASKS, TASKS, generate, generate_parts, pretrain_mixture

__all__ = [
    "DataError",
    "DataFormatError",
    "PRETRAIN_TASKS",
    "TASKS",
    "TaskData",
    "TaskSpec",
    "generate",
    "generate_parts",
    "pretrain_mixture",
]
