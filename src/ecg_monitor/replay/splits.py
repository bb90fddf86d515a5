"""MIT-BIH record lists and de Chazal's inter-patient split (DS1 train / DS2 test)."""

from __future__ import annotations

ALL_RECORDS: tuple[str, ...] = (
    "100 101 102 103 104 105 106 107 108 109 111 112 113 114 115 116 117 118 119 121 122 123 "
    "124 200 201 202 203 205 207 208 209 210 212 213 214 215 217 219 220 221 222 223 228 230 "
    "231 232 233 234"
).split()

#: Paced records: excluded from beat classification (AAMI EC57 / de Chazal 2004).
PACED: tuple[str, ...] = ("102", "104", "107", "217")

#: de Chazal et al. 2004, training set (22 records, no paced record).
DS1: tuple[str, ...] = (
    "101 106 108 109 112 114 115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230"
).split()

#: de Chazal et al. 2004, test set (22 records, no paced record). Never used for training or tuning.
DS2: tuple[str, ...] = (
    "100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234"
).split()

assert not set(DS1) & set(DS2), "DS1 and DS2 must not share a patient"


def parse_record_spec(spec: str) -> list[str]:
    """Turn ``all``, ``ds1``, ``ds2`` or a comma list (``208,118e06``) into record names."""
    key = spec.strip().lower()
    if key == "all":
        return list(ALL_RECORDS)
    if key == "ds1":
        return list(DS1)
    if key == "ds2":
        return list(DS2)
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError(f"empty record list: {spec!r} (use all, ds1, ds2 or e.g. 100,208)")
    return names

#: Records 201 and 202 come from the same subject (MIT-BIH directory), yet de Chazal puts 201 in
#: DS1 and 202 in DS2. Training uses DS1 without 201 so no beat of a test patient is trained on.
SAME_SUBJECT: tuple[tuple[str, str], ...] = (("201", "202"),)

#: The records a classifier may be trained or tuned on.
DS1_TRAIN: tuple[str, ...] = tuple(
    r for r in DS1 if not any(r in pair and set(pair) & set(DS2) for pair in SAME_SUBJECT)
)

#: MIT-BIH Supraventricular Arrhythmia Database (SVDB, 128 Hz): records 800-894, one patient each.
SVDB: tuple[str, ...] = tuple(str(r) for r in range(800, 895))

#: The SVDB training half (857-894), for training and model selection; 800-856 are a test set.
SVDB_TRAIN: tuple[str, ...] = tuple(str(r) for r in range(857, 895))

#: Every record a classifier may be trained or tuned on: 21 MIT-BIH + 38 SVDB patients.
TRAINING_RECORDS: tuple[str, ...] = DS1_TRAIN + SVDB_TRAIN
