"""The AAMI class of each MIT-BIH beat symbol, as the beat classifier is trained and scored.

EC57 and PhysioNet's bxb put the escape beats e (atrial) and j (nodal) in S
(:data:`ecg_monitor.evaluation.ec57.AAMI_OF_SYMBOL`). de Chazal et al. 2004, Zhang et al. 2014 and
most inter-patient papers put them in N, the mapping used here: an escape beat comes *late*,
after a pause, with a normal QRS, so a class of premature beats is no place for it, and the
published results we compare with count it that way. ``ecg-eval classify`` also reports S under
the bxb mapping.
"""

from __future__ import annotations

from ecg_monitor.evaluation.ec57 import AAMI_OF_SYMBOL

CLASS_OF_SYMBOL: dict[str, str] = {**AAMI_OF_SYMBOL, "e": "N", "j": "N"}
MAPPING_NOTE = "AAMI mapping as de Chazal 2004: N = N L R B e j; S = A a J S n; V = V E r; F = F; Q = / f Q ?"
