"""The beat record every stage after the detector passes along."""

from __future__ import annotations

from dataclasses import dataclass

#: AAMI EC57 beat classes, in the order the classifier outputs them.
AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: Label a beat carries until (or unless) the classifier has seen it: AAMI "unclassifiable".
UNCLASSIFIED = "Q"


@dataclass(frozen=True, slots=True)
class Beat:
    """One detected QRS complex.

    ``sample`` is the R mark (absolute sample index of the stream); ``emitted_at`` is how many
    samples had been received when the beat was decided, so ``emitted_at - sample`` is the
    algorithmic delay a live monitor cannot avoid.
    """

    sample: int
    emitted_at: int
    label: str = UNCLASSIFIED
    search_back: bool = False
    probabilities: tuple[float, ...] | None = None
