"""Alarm episodes (hold, escalation, quality gate), the one heart-rate rule, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.detector.advisory import NOISE_BETWEEN_BEATS
from ecg_monitor.detector.alarms import VT_LABELS, AlarmEngine
from ecg_monitor.detector.episodes import AlarmBook
from ecg_monitor.detector.quality import BlockQuality, JudgedBlock
from ecg_monitor.detector.rules import RhythmRules

FS = 360.0


def run_rules(beats: list[tuple[float, str]], until_s: float,
              vt_labels: tuple[str, ...] = ("V",)) -> tuple[RhythmRules, list]:
    book = AlarmBook(FS)
    rules = RhythmRules(FS, book, vt_labels=vt_labels)
    for t, label in beats + [(until_s, "")]:
        s = int(round(t * FS))
        while (due := rules.due()) is not None and due < s:
            rules.fire(due)
        if label:
            rules.beat(s, s, label)
    return rules, book.events


def test_heart_rate_is_median_of_last_8_rr_and_quoted_in_details():
    # 8 RRs of 0.6 s (100 bpm) then 7 V beats 0.45 s apart (133 bpm): at the 5th V beat 5 of the
    # last 8 RRs are 0.45 s, so the median rate is 133 bpm too; 7 beats on it is 0.45 s, still 133
    beats = [(i * 0.6, "N") for i in range(9)] + [(4.8 + i * 0.45, "V") for i in range(1, 8)]
    rules, events = run_rules(beats, 8.0)
    assert rules.heart_rate_bpm == pytest.approx(60 / 0.45)
    onset = [e for e in events if e.alarm == "ventricular_tachycardia"][0]
    assert onset.detail == "run of 5 V beats at 133 bpm (run rate); HR 133 bpm (median of last 8 RR)"
    assert onset.heart_rate_bpm == pytest.approx(60 / 0.45)
    rules.beat(int(8.4 * FS), int(8.4 * FS), "N")  # RRs now 0.6 x2, 0.45 x6 (the last 1.65 s counts too)
    assert rules.heart_rate_bpm == pytest.approx(60 / 0.45)
    rules.mark_unusable(int(9 * FS))  # a gap: the rate is unknown until a new RR is measured
    assert rules.heart_rate_bpm is None and rules.hr_text().startswith("HR unknown")
    rules.beat(int(9.5 * FS), int(9.5 * FS), "N")
    rules.beat(int(10.25 * FS), int(10.25 * FS), "N")
    assert rules.heart_rate_bpm == pytest.approx(80.0)


def test_live_vt_runs_count_fusion_beats_but_couplets_do_not():
    # 223's VT as the classifier labels it: V and F alternating at 0.5 s (120 bpm)
    beats = [(i * 0.8, "N") for i in range(9)] + [(6.4 + i * 0.5, "FV"[i % 2]) for i in range(1, 8)]
    _, reference = run_rules(beats, 12.0)
    assert not [e for e in reference if e.alarm == "ventricular_tachycardia"]  # annotated VT is V beats
    _, live = run_rules(beats, 12.0, vt_labels=VT_LABELS)
    onset = [e for e in live if e.alarm == "ventricular_tachycardia"][0]
    assert onset.sample == int(round(8.9 * FS)) and onset.detail.startswith("run of 5 V/F beats at 120 bpm")
    mislabelled = [(i * 0.8, "N") for i in range(9)] + [(6.4 + i * 0.5, "F") for i in range(1, 8)]
    _, live = run_rules(mislabelled, 12.0, vt_labels=VT_LABELS)  # sinus beats read as F (215)
    assert not [e for e in live if e.alarm == "ventricular_tachycardia"]  # a run must be mostly V
    couplet = [(i * 0.8, "N") for i in range(9)] + [(7.6, "V"), (8.1, "F"), (8.9, "N"), (9.7, "V"), (10.2, "V"), (11.0, "N")]
    _, live = run_rules(couplet, 12.0, vt_labels=VT_LABELS)
    assert [e.sample for e in live if e.alarm == "pvc_couplet" and e.event == "onset"] == [int(round(11.0 * FS))]


def test_vt_returning_within_the_hold_is_one_episode():
    vt = lambda start: regular(start, 6, 150, "V")
    beats = regular(0, 8, 75) + vt(6.0) + regular(8.4, 4, 75) + vt(11.6) + regular(14.0, 30, 75)
    _, events = run_rules(beats, 40.0)
    rows = [(e.event, round(e.sample / FS, 1)) for e in events if e.alarm == "ventricular_tachycardia"]
    assert rows == [("onset", 7.6), ("end", 24.0)]  # cleared at 14.0 s, held 10 s
    end = [e for e in events if e.alarm == "ventricular_tachycardia"][1]
    assert "clear since 14.0 s" in end.detail  # the run ended at 14.0 s; the alarm a hold later
    # 12 s of sinus between the runs: two episodes
    beats = regular(0, 8, 75) + vt(6.0) + regular(8.4, 15, 75) + vt(20.4) + regular(22.8, 30, 75)
    _, events = run_rules(beats, 50.0)
    assert [e.event for e in events if e.alarm == "ventricular_tachycardia"] == ["onset", "end", "onset", "end"]


def regular(start: float, n: int, bpm: float, label: str = "N") -> list[tuple[float, str]]:
    return [(start + i * 60.0 / bpm, label) for i in range(n)]


def test_vt_turning_into_vf_and_back_is_one_escalating_episode():
    book = AlarmBook(FS)
    s = lambda t: int(t * FS)
    book.set("ventricular_tachycardia", True, s(10), 150.0, "run")
    book.set("ventricular_fibrillation", True, s(14), None, "waves")
    book.set("ventricular_tachycardia", False, s(15), None)
    book.set("ventricular_fibrillation", False, s(20), None)
    book.set("ventricular_tachycardia", True, s(21), 160.0, "run")  # back to VT: same episode
    book.set("ventricular_tachycardia", False, s(25), None)
    while (due := book.due()) is not None:
        book.fire(due)
    rows = [(e.alarm, e.event, e.sample / FS, e.escalation) for e in book.events]
    assert rows == [("ventricular_tachycardia", "onset", 10, False), ("ventricular_tachycardia", "end", 14, False),
                    ("ventricular_fibrillation", "onset", 14, True), ("ventricular_fibrillation", "end", 35, False)]
    assert "escalated to ventricular_fibrillation" in book.events[1].detail
    assert "clear since 25.0 s" in book.events[3].detail


def test_noise_advisory_escalates_to_cannot_analyse_as_one_episode_and_gates_nothing():
    """ecg_noisy -> signal_noisy -> ecg_noisy is one noise episode (no onset each time the
    detector's verdict flips), and a VT during the advisory alone is raised at once."""
    book = AlarmBook(FS)
    s = lambda t: int(t * FS)
    book.set("ecg_noisy", True, s(10), 70.0, "ECG noisy")
    book.set("ventricular_tachycardia", True, s(11), 150.0, "run")  # the advisory withholds nothing
    book.set("signal_noisy", True, s(12), None, "cannot analyse ECG")
    book.set("signal_noisy", False, s(16), None)
    book.set("signal_noisy", True, s(18), None, "cannot analyse ECG")  # flips back within the advisory
    book.set("signal_noisy", False, s(20), None)
    book.set("ecg_noisy", False, s(24), None)
    book.set("ventricular_tachycardia", False, s(24), None)
    while (due := book.due()) is not None:
        book.fire(due)
    rows = [(e.alarm, e.event, e.sample / FS, e.escalation) for e in book.events]
    assert rows == [("ecg_noisy", "onset", 10, False), ("ventricular_tachycardia", "onset", 11, False),
                    ("ecg_noisy", "end", 12, False), ("signal_noisy", "onset", 12, True),
                    ("signal_noisy", "end", 29, False), ("ventricular_tachycardia", "end", 34, False)]
    assert book.events[1].raised_at is None and "escalated to signal_noisy" in book.events[2].detail
    assert "clear since 24.0 s" in book.events[4].detail


def test_withheld_alarm_is_raised_with_its_true_onset_only_when_clean_signal_confirms_it():
    book = AlarmBook(FS)
    s = lambda t: int(t * FS)
    book.set_noisy(True, s(10))
    book.set("ventricular_tachycardia", True, s(12), 150.0, "run")
    book.set("signal_noisy", True, s(10), None, "cannot analyse ECG")
    assert [e.alarm for e in book.events] == ["signal_noisy"] and book.withheld == ("ventricular_tachycardia",)
    book.set_noisy(False, s(20))
    book.set("ventricular_tachycardia", False, s(20), None)  # the engine restarts every condition
    book.set("ventricular_tachycardia", True, s(23), 150.0, "run")  # clean beats confirm it
    onset = book.events[-1]
    assert (onset.alarm, onset.sample, onset.raised_at) == ("ventricular_tachycardia", s(12), s(23))
    assert "withheld for noise" in onset.detail
    # a condition that clears inside the noise is never raised
    book = AlarmBook(FS)
    book.set_noisy(True, s(10))
    book.set("asystole", True, s(12), 0.0, "silence")
    book.set("asystole", False, s(13), 60.0)
    book.set_noisy(False, s(20))
    assert book.events == [] and book.withheld == ()


def test_vt_in_noise_needs_consistent_regular_wide_beats():
    """The VT check in noise (the run's blocks show noise between the beats): five alike wide
    beats at a steady rate pass, also when one R mark sits 80 ms off (on the S wave of a wide
    beat); the same run with one beat replaced by a noise spike (what noise makes of a "run")
    does not, nor the same beats at an erratic rate, also when the noise is in the 10 s before.
    In clean signal the classifier's labels stand: an irregular VT (210 at 1085 s: RRs 0.40 to
    0.71 s next to 0.33 s) is VT."""

    def run(rr_s: list[float], noise_ratio: float, noisy: tuple[int, ...] = (),
            shift: dict[int, int] | None = None, advisory_ratio: float = 0.0) -> bool:
        engine = AlarmEngine(FS)
        engine.advisory.ratio = advisory_ratio  # the noise between beats over the last 10 s
        r = np.cumsum([int(0.5 * FS)] + [int(s * FS) for s in rr_s])
        x = np.zeros(int(r[-1] + FS))
        for k in r:
            x += -1.5 * np.exp(-0.5 * ((np.arange(x.size) - k) / (0.03 * FS)) ** 2)
        for i in noisy:
            x[r[i] - 40 : r[i] + 40] = np.random.default_rng(i).normal(0, 0.8, 80)
        engine._display.extend(x)
        engine.n = x.size
        engine._judged.add(JudgedBlock(0, x.size, BlockQuality(noise_ratio=noise_ratio)))
        return engine._consistent([int(k) + (shift or {}).get(i, 0) for i, k in enumerate(r)])

    noise, clean = NOISE_BETWEEN_BEATS + 0.01, NOISE_BETWEEN_BEATS - 0.01
    assert run([0.4] * 4, noise)
    assert run([0.4] * 4, noise, shift={2: int(0.08 * FS)})
    assert not run([0.4] * 4, noise, noisy=(2,))
    assert not run([0.3, 0.3, 0.7, 0.3], noise)
    assert not run([0.40, 0.63, 0.71, 0.33], noise)
    assert run([0.40, 0.63, 0.71, 0.33], clean)
    assert not run([0.40, 0.63, 0.71, 0.33], clean, advisory_ratio=noise)
