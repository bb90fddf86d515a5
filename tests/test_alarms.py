"""Alarm rules, signal quality, the VF detector and the synthetic device that shows them all."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_monitor.detector.alarms import AlarmEngine
from ecg_monitor.detector.pipeline import DetectorPipeline
from ecg_monitor.detector.quality import QualityJudge
from ecg_monitor.detector.episodes import AlarmBook
from ecg_monitor.detector.rules import RhythmRules
from ecg_monitor.detector.vf import VFDetector
from ecg_monitor.evaluation.alarms import (Episode, Reference, Stretch, announced, format_burden, noise_burden,
                                          reference_episodes, score)
from ecg_monitor.streamer.synthetic import SyntheticSource, scenario_times

FS = 360.0


def feed(beats: list[tuple[float, str]], until_s: float, delay_s: float = 0.0,
         hold: bool = False) -> list[tuple[str, str, float]]:
    """Beats (time s, label) through RhythmRules in time order; events as (alarm, event, time s).
    Without ``hold`` every episode ends when its condition does (the definitions themselves)."""
    book = AlarmBook(FS, hold=hold)
    rules = RhythmRules(FS, book, decision_delay_s=delay_s)
    for t, label in beats + [(until_s, "")]:
        s = int(t * FS)
        while (due := rules.due()) is not None and due < s:
            rules.fire(due)
        if label:
            rules.beat(s, s, label)
    return [(e.alarm, e.event, round(e.sample / FS, 2)) for e in book.events]


def regular(start: float, n: int, bpm: float, label: str = "N") -> list[tuple[float, str]]:
    return [(start + i * 60.0 / bpm, label) for i in range(n)]


def test_asystole_and_pause_by_the_definition():
    beats = regular(0, 5, 75) + regular(3.2 + 4.5, 5, 75)  # last beat at 3.2 s, next 4.5 s later
    ev = feed(beats, 20)
    assert ("pause", "onset", 5.7) in ev and ("asystole", "onset", 7.2) in ev
    assert ("asystole", "end", 7.7) in ev
    assert not any(a == "asystole" for a, _, _ in feed(regular(0, 5, 75) + regular(3.2 + 3.9, 5, 75), 11))


def test_late_beat_cannot_hide_asystole():
    """A 4.2 s silence is asystole even when the detector's decision delay (0.6 s) hides it from
    the timer: the beat that ends it raises and ends the alarm."""
    ev = feed(regular(0, 5, 75) + regular(3.2 + 4.2, 5, 75), 20, delay_s=0.6)
    assert ("asystole", "onset", 7.4) in ev and ("asystole", "end", 7.4) in ev


def test_rate_alarms_need_their_beat_counts():
    assert ("extreme_bradycardia", "onset", pytest.approx(9.0 + 5 * 1.6, abs=0.01)) in feed(
        regular(0, 10, 75) + regular(9.0 + 1.6, 6, 37.5), 30)
    assert not any(a == "extreme_bradycardia" for a, _, _ in feed(regular(0, 10, 75) + regular(9.0 + 1.6, 4, 37.5), 30))
    fast = feed(regular(0, 10, 75) + regular(9.0 + 0.4, 20, 150), 30)
    assert [e for e in fast if e[0] == "extreme_tachycardia"][0][1] == "onset"
    assert not any(a == "extreme_tachycardia" for a, _, _ in feed(regular(0, 10, 75) + regular(9.0 + 0.4, 16, 150), 30))


def test_ventricular_rules_use_labels_and_rate():
    vt = feed(regular(0, 8, 75) + regular(7.0, 5, 120, "V") + regular(10.0, 5, 75), 20)
    assert vt[0][:2] == ("ventricular_tachycardia", "onset") and vt[1][:2] == ("ventricular_tachycardia", "end")
    assert not any(a == "ventricular_tachycardia" for a, _, _ in feed(regular(0, 8, 75) + regular(7.0, 5, 90, "V"), 20))
    assert not any(a == "ventricular_tachycardia" for a, _, _ in feed(regular(0, 8, 75) + regular(7.0, 4, 150, "V"), 20))
    couplet = feed(regular(0, 8, 75) + [(6.6, "V"), (7.1, "V"), (8.2, "N")], 30, hold=True)
    assert ("pvc_couplet", "onset", 8.2) in couplet and ("pvc_couplet", "end", 18.2) in couplet
    big = feed([(i * 0.8, "V" if i % 2 else "N") for i in range(12)] + [(9.6, "N"), (10.4, "N")], 20)
    assert [e[:2] for e in big if e[0] == "bigeminy"] == [("bigeminy", "onset"), ("bigeminy", "end")]


def test_quality_judge():
    q = QualityJudge(FS)
    t = np.arange(180) / FS
    assert not q.judge(np.sin(2 * np.pi * 1.2 * t)).unusable
    assert q.judge(np.full(180, np.nan)).missing
    assert q.judge(np.full(180, 0.3)).flat
    assert q.judge(np.full(180, 5.0)).saturated  # flat, far from the last good level
    assert q.judge(np.clip(3 * np.sin(2 * np.pi * 1.2 * t), -1, 1)).saturated
    assert q.judge(np.sin(2 * np.pi * 1.2 * t) + np.random.default_rng(0).normal(0, 0.2, 180)).noisy


def test_vf_detector_on_waves_and_beats():
    vf = VFDetector(FS)
    t = np.arange(vf.window) / FS
    assert vf.is_vf(0.6 * np.sin(2 * np.pi * 4.5 * t + 0.3 * np.sin(2 * np.pi * 0.5 * t)))
    beats = np.zeros(vf.window)
    beats[::288] = 1.0
    qrs = np.convolve(beats, np.hanning(30), "same")
    assert not vf.is_vf(qrs)
    assert not vf.is_vf(np.full(vf.window, np.nan))


def synthetic_events(chunk: int, seconds: float = 222.0):
    src = SyntheticSource(seed=3)
    src.start()
    x = np.concatenate([src.read(3600).samples for _ in range(int(seconds / 10))])
    pipe, engine = DetectorPipeline(FS), AlarmEngine(FS)
    events = []
    for i in range(0, len(x), chunk):
        c = x[i : i + chunk]
        events += engine.update(c, pipe.update(c))
    return events


@pytest.fixture(scope="module")
def scenario_events():
    return synthetic_events(18)


def test_synthetic_device_shows_every_alarm(scenario_events):
    phases = {r: (a, b) for a, b, r in scenario_times()}
    onsets = {}
    for e in scenario_events:
        if e.event == "onset":
            onsets.setdefault(e.alarm, e.sample / FS)
    expected = {"asystole": "pause", "pause": "pause", "extreme_bradycardia": "brady",
                "extreme_tachycardia": "svt", "ventricular_fibrillation": "vf", "signal_noisy": "noise",
                "lead_off": "leadoff", "signal_saturated": "saturate", "ventricular_tachycardia": "vt",
                "pvc_couplet": "couplet", "bigeminy": "bigeminy"}
    for alarm, phase in expected.items():
        a, b = phases[phase]
        assert alarm in onsets and a <= onsets[alarm] <= b + 5, (alarm, onsets.get(alarm), (a, b))


def test_alarm_events_do_not_depend_on_chunking(scenario_events):
    assert synthetic_events(5000) == scenario_events


def test_reference_episodes_and_scoring():
    # a 5 s gap after 7.2 s, flutter from 30 to 40 s (no beats there), beats to the end
    beats = regular(0, 10, 75) + regular(12.2, 22, 75) + regular(40.0, 25, 75)
    ref = Reference(np.array([round(t * FS) for t, _ in beats]), np.array([lab for _, lab in beats]),
                    flutter=[(round(30 * FS), round(40 * FS))])
    eps = reference_episodes(ref, FS, round(60 * FS))
    assert [(e.alarm, e.onset, e.end) for e in eps] == [  # flutter is not silence
        ("asystole", round(11.2 * FS), round(12.2 * FS)), ("ventricular_fibrillation", round(34 * FS), round(40 * FS))]
    detected = [Episode("asystole", round(11.8 * FS), round(12.5 * FS)),
                Episode("ventricular_fibrillation", round(50.1 * FS), round(52 * FS))]
    s = score(eps, detected, FS).types
    assert (s["asystole"].detected, s["asystole"].false_alarms) == (1, 0)
    assert s["asystole"].delays_s == [pytest.approx(0.6, abs=0.01)]
    assert (s["ventricular_fibrillation"].detected, s["ventricular_fibrillation"].false_alarms) == (0, 1)


def test_noisy_stretches_announced_or_listed_as_missed():
    # three noisy stretches: one covered from its 3rd second by signal_noisy, one by a lead_off
    # that began before it, one only by a life-threatening alarm (not a technical one)
    mask = np.zeros(round(60 * FS), bool)
    for a, b in ((5, 15), (20, 30), (40, 50)):
        mask[round(a * FS) : round(b * FS)] = True
    detected = [Episode("signal_noisy", round(7 * FS), round(16 * FS)),
                Episode("lead_off", round(18 * FS), round(21 * FS)),
                Episode("ventricular_tachycardia", round(41 * FS), round(45 * FS))]
    assert announced(detected, mask, FS) == [Stretch(5.0, 15.0, pytest.approx(2.0)), Stretch(20.0, 30.0, 0.0),
                                             Stretch(40.0, 50.0, None)]


def test_noise_alarm_burden_counts_episodes_and_time():
    """An advisory that escalates to "cannot analyse" is one episode; lead_off is no noise alarm;
    the advisory announces a stretch like any technical alarm."""
    detected = [Episode("ecg_noisy", round(7 * FS), round(10 * FS)),
                Episode("signal_noisy", round(10 * FS), round(16 * FS), escalation=True),
                Episode("signal_noisy", round(40 * FS), round(45 * FS)),
                Episode("lead_off", round(18 * FS), round(21 * FS))]
    burden = noise_burden(detected, round(60 * FS), FS)
    assert dict(burden.onsets) == {"ecg_noisy": 1, "signal_noisy": 1}
    assert dict(burden.seconds) == pytest.approx({"ecg_noisy": 3.0, "signal_noisy": 11.0, "either": 14.0})
    text = format_burden(burden + burden, {"100": 4, "101": 0, "103": 1}, hours=2.0)
    assert text.startswith("noise technical alarms: 4 episodes in 2.0 h = 2.00/h, on 0.39 % of the time;")
    assert text.endswith("noise alarm episodes by record: 100 4, 103 1")
    mask = np.zeros(round(60 * FS), bool)
    mask[round(5 * FS) : round(15 * FS)] = True
    assert announced(detected, mask, FS) == [Stretch(5.0, 15.0, pytest.approx(2.0))]
