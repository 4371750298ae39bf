"""An independent cross-check source of labelled frames, written apart from xapp.data (own channel,
own conventions; digital constellations and pulses from `komm`). Never trained on: it measures how
heads trained on our generators transfer. See CARD.md.

    from xapp.crosscheck import generate
    d = generate("modulation", 1000, seed=0)   # TaskData, same contract as xapp.data.generate
"""

from .tasks import SOURCES, generate

TASKS = tuple(SOURCES)

__all__ = ["TASKS", "generate"]
