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
    algorithmic delay a live monitor cannot avoid. Once classified, ``emitted_at`` is when the
    label was given (the classifier waits for the samples after the R mark), ``probabilities``
    are the model's, in :data:`AAMI_CLASSES` order (None when the beat was not classified), and
    ``short_history`` says the rhythm features had fewer than three RR intervals to go on;
    ``detected_at`` keeps the detector's own decision time.
    """

    sample: int
    emitted_at: int
    label: str = UNCLASSIFIED
    search_back: bool = False
    probabilities: tuple[float, ...] | None = None
    short_history: bool = False
    detected_at: int | None = None  # when the detector decided, if the label came later

    # The two copies below call the constructor, not ``dataclasses.replace``: they run once per
    # beat, where ``replace``'s field introspection costs more than the rest of the step.
    def ready_at(self, emitted_at: int) -> Beat:
        """The beat given out at ``emitted_at``, the detector's decision time kept."""
        return Beat(self.sample, emitted_at, self.label, self.search_back, self.probabilities,
                    self.short_history, self.emitted_at)

    def labelled(self, label: str, probabilities: tuple[float, ...] | None, short_history: bool) -> Beat:
        """The beat with a (new) label and the probabilities behind it."""
        return Beat(self.sample, self.emitted_at, label, self.search_back, probabilities, short_history,
                    self.detected_at)
