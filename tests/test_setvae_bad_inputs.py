"""Issue 13, clinical loaders: every bad input is refused with a ClinicalFormatError that names the file
and the line/record/column, says what was found and what was expected — never silently read."""

from __future__ import annotations

import gzip
import re

import pytest

from latentlab.setvae import data as c

HEADER = "Time,Parameter,Value\n"


def _set(tmp_path, files: dict[str, str | bytes], outcomes: str = "RecordID,In-hospital_death\n1,0\n"):
    directory = tmp_path / "set-a"
    directory.mkdir(exist_ok=True)
    for name, body in files.items():
        (directory / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    out = tmp_path / "Outcomes-a.txt"
    out.write_text(outcomes)
    return directory, out


def _raises(pattern: str, load, *args, **kwargs) -> str:
    with pytest.raises(c.ClinicalFormatError) as err:
        load(*args, **kwargs)
    message = str(err.value)
    assert re.search(pattern, message), message
    return message


# --------------------------------------------------------------------------- PhysioNet 2012 stay files

PHYSIONET_CASES = {
    "value inf": ("00:00,RecordID,1\n01:10,HR,inf\n", r"1\.txt: line 3: Value 'inf' is not a finite number"),
    "value nan text": ("00:00,RecordID,1\n01:10,HR,NaN\n", r"1\.txt: line 3: Value 'NaN' is not a finite number"),
    "empty value": ("00:00,RecordID,1\n01:10,HR,\n", r"1\.txt: line 3: Value is empty; expected a finite number"),
    "non-integer RecordID": ("00:00,RecordID,132539.7\n01:10,HR,80\n", r"1\.txt: line 2: RecordID '132539.7' is not a whole number"),
    "minutes out of range": ("00:00,RecordID,1\n25:99,HR,80\n", r"1\.txt: line 3: Time: malformed time '25:99'; expected HH:MM"),
    "clock with letters": ("00:00,RecordID,1\n01:00,HR,80\n7h30,HR,80\n", r"1\.txt: line 4: Time: malformed time '7h30'"),
    "extra field": ("00:00,RecordID,1\n01:10,HR,80,bpm\n", r"1\.txt: line 3: 4 fields where the header has 3"),
    "two RecordIDs": ("00:00,RecordID,1\n00:00,RecordID,2\n01:10,HR,80\n", r"1\.txt: 2 different RecordIDs \['1', '2'\]"),
    "empty parameter": ("00:00,RecordID,1\n01:10,,80\n", r"1\.txt: line 3: empty Parameter"),
    "unknown parameter": ("00:00,RecordID,1\n01:10,HR,80\n02:00,Pulse,70\n",
                          r"1\.txt: line 4: Parameter 'Pulse' is not a known variable.*unknown_variables='drop'"),
    "only static descriptors": ("00:00,RecordID,1\n00:00,Age,54\n", r"1\.txt: RecordID 1 has no time-series observation"),
}


@pytest.mark.parametrize("case", list(PHYSIONET_CASES))
def test_physionet_stay_file_faults_name_file_and_line(tmp_path, case):
    body, pattern = PHYSIONET_CASES[case]
    directory, outcomes = _set(tmp_path, {"1.txt": HEADER + body})
    _raises(pattern, c.load_physionet, directory, outcomes)


def test_non_utf8_and_gzip_bytes_name_the_line(tmp_path):
    directory, outcomes = _set(tmp_path, {"1.txt": (HEADER + "00:00,RecordID,1\n01:10,Temp,37\n").encode()
                                          + "01:20,HR,80 \xb0\n".encode("latin-1")})
    _raises(r"1\.txt: line 4: byte 0xb0 is not UTF-8 text", c.load_physionet, directory, outcomes)
    (directory / "1.txt").write_bytes(gzip.compress((HEADER + "00:00,RecordID,1\n").encode()))
    _raises(r"1\.txt: line \d+: byte 0x.. is not UTF-8 text \(gzip-compressed", c.load_physionet, directory, outcomes)


def test_header_and_empty_files(tmp_path):
    directory, outcomes = _set(tmp_path, {"1.txt": ""})
    _raises(r"1\.txt: empty file", c.load_physionet, directory, outcomes)
    (directory / "1.txt").write_text("T,P,V\n00:00,HR,1\n")
    _raises(r"1\.txt: header must be Time,Parameter,Value; found \['T', 'P', 'V'\]", c.load_physionet, directory, outcomes)
    _raises(r"nowhere: not a directory", c.load_physionet, tmp_path / "nowhere", outcomes)


def test_duplicate_record_across_files_names_both(tmp_path):
    stay = HEADER + "00:00,RecordID,7\n01:10,HR,80\n"
    directory, outcomes = _set(tmp_path, {"a.txt": stay, "b.txt": stay}, "RecordID,In-hospital_death\n7,0\n")
    _raises(r"b\.txt: duplicate RecordID 7 \(also in a\.txt\)", c.load_physionet, directory, outcomes)


OUTCOME_CASES = {
    "missing row": ("RecordID,In-hospital_death\n2,0\n", r"Outcomes-a\.txt: no outcome row for 1 stay\(s\): RecordID \['1'\]"),
    "duplicate row": ("RecordID,In-hospital_death\n1,0\n1,1\n", r"Outcomes-a\.txt: line 3: duplicate RecordID 1 \(first on line 2\)"),
    "label 2": ("RecordID,In-hospital_death\n1,2\n", r"Outcomes-a\.txt: line 2: In-hospital_death must be 0 or 1; found '2'"),
    "label yes": ("RecordID,In-hospital_death\n1,yes\n", r"Outcomes-a\.txt: line 2: In-hospital_death must be 0 or 1; found 'yes'"),
    "label empty": ("RecordID,In-hospital_death\n1,\n", r"Outcomes-a\.txt: line 2: In-hospital_death must be 0 or 1"),
    "non-integer RecordID": ("RecordID,In-hospital_death\n1.5,0\n", r"Outcomes-a\.txt: line 2: RecordID '1.5' is not a whole number"),
    "label column missing": ("RecordID,Survival\n1,0\n", r"Outcomes-a\.txt: missing column 'In-hospital_death'; found \['RecordID', 'Survival'\]"),
    "extra field": ("RecordID,In-hospital_death\n1,0,9\n", r"Outcomes-a\.txt: line 2: 3 fields where the header has 2"),
    "no rows": ("RecordID,In-hospital_death\n", r"Outcomes-a\.txt: no outcome rows"),
}


@pytest.mark.parametrize("case", list(OUTCOME_CASES))
def test_outcome_file_faults_name_file_and_line(tmp_path, case):
    outcomes_text, pattern = OUTCOME_CASES[case]
    directory, outcomes = _set(tmp_path, {"1.txt": HEADER + "00:00,RecordID,1\n01:10,HR,80\n"}, outcomes_text)
    _raises(pattern, c.load_physionet, directory, outcomes)


def test_outcome_ids_written_as_floats_still_match_and_blank_lines_do_not_shift_line_numbers(tmp_path):
    directory, outcomes = _set(tmp_path, {"1.txt": HEADER + "00:00,RecordID,1\n\n01:10,HR,80\n\n02:00,HR,x\n"},
                               "RecordID,In-hospital_death\n1.0,1\n")
    _raises(r"1\.txt: line 6: Value 'x'", c.load_physionet, directory, outcomes)
    (directory / "1.txt").write_text(HEADER + "00:00,RecordID,1\n01:10,HR,80\n")
    data = c.load_physionet(directory, outcomes)
    assert data.labels.to_dict() == {"1": 1}


def test_unknown_parameter_drop_policy_counts(tmp_path):
    directory, outcomes = _set(tmp_path, {"1.txt": HEADER + "00:00,RecordID,1\n01:10,HR,80\n02:00,Pulse,70\n"})
    data = c.load_physionet(directory, outcomes, unknown="drop")
    assert list(data.obs["variable"]) == ["HR"] and data.dropped["unknown variable rows"] == 1


# --------------------------------------------------------------------------- long CSV, the user's own column names

COLUMNS = {"stay_id": "icustay", "time": "minutes_in", "variable": "item", "value": "valuenum"}
OBS_HEADER = "icustay,minutes_in,item,valuenum\n"


def _long(tmp_path, rows: str | bytes, labels: str = "icustay,died\nA,0\nB,1\n"):
    obs, lab = tmp_path / "events.csv", tmp_path / "outcome.csv"
    obs.write_bytes(rows if isinstance(rows, bytes) else (OBS_HEADER + rows).encode())
    lab.write_text(labels)
    return obs, lab


def _load_long(obs, lab, **kw):
    return c.load_long_csv(obs, lab, columns=COLUMNS, label_column="died", time_unit="minutes", **kw)


LONG_CASES = {
    "value inf": ("A,10,HR,80\nB,20,HR,inf\n", r"events\.csv: line 3: valuenum 'inf' is not a finite number"),
    "value 1e999": ("A,10,HR,1e999\n", r"events\.csv: line 2: valuenum '1e999' is not a finite number"),
    "clock time": ("A,01:30,HR,80\n", r"events\.csv: line 2: minutes_in '01:30' is not a finite number; expected a finite number \(time_unit 'minutes'; pass time_unit='hh:mm'"),
    "negative time": ("A,10,HR,80\nA,-5,HR,80\n", r"events\.csv: line 3: negative minutes_in '-5'"),
    "extra field": ("A,10,HR,80\nB,10,HR,80,x\n", r"events\.csv: line 3: 5 fields where the header has 4"),
    "empty id": ("A,10,HR,80\n,10,HR,80\n", r"events\.csv: line 3: empty icustay"),
    "empty variable": ("A,10,,80\n", r"events\.csv: line 2: empty item"),
    "no outcome": ("A,10,HR,80\nC,10,HR,80\n", r"outcome\.csv: no outcome row for 1 stay\(s\): icustay \['C'\]"),
}


@pytest.mark.parametrize("case", list(LONG_CASES))
def test_long_csv_faults_name_file_line_and_column(tmp_path, case):
    rows, pattern = LONG_CASES[case]
    _raises(pattern, _load_long, *_long(tmp_path, rows))


def test_long_csv_label_file_faults(tmp_path):
    rows = "A,10,HR,80\nB,10,HR,80\n"
    _raises(r"outcome\.csv: line 3: died must be 0 or 1; found '0.5'", _load_long, *_long(tmp_path, rows, "icustay,died\nA,0\nB,0.5\n"))
    _raises(r"outcome\.csv: line 4: duplicate icustay B \(first on line 3\)", _load_long,
            *_long(tmp_path, rows, "icustay,died\nA,0\nB,1\nB,1\n"))
    _raises(r"outcome\.csv: missing column 'icustay'; found \['stay_id', 'died'\]", _load_long,
            *_long(tmp_path, rows, "stay_id,died\nA,0\nB,1\n"))


def test_long_csv_columns_encoding_and_units(tmp_path):
    obs, lab = _long(tmp_path, "A,10,HR,80\n")
    _raises(r"events\.csv: missing column\(s\) \['icustay', 'minutes_in'\]; found \['stay_id', 'time', 'item', 'valuenum'\]",
            _load_long, *_long(tmp_path, b"stay_id,time,item,valuenum\nA,1,HR,80\n"))
    _raises(r"events\.csv: line 2: byte 0xff is not UTF-8", _load_long, *_long(tmp_path, OBS_HEADER.encode() + b"A,10,HR,\xff\n"))
    _raises(r"events\.csv: line 2: item 'Pulse' is not a known variable", _load_long,
            *_long(tmp_path, "A,10,Pulse,80\n"), variables=["HR"])
    _raises(r"time_unit 'fortnights'", c.load_long_csv, obs, lab, columns=COLUMNS, label_column="died", time_unit="fortnights")
    _raises(r"columns: unknown key\(s\) \['label'\]", c.load_long_csv, obs, lab, columns={"label": "died"})


def test_long_csv_minutes_become_exact_hours(tmp_path):
    data = _load_long(*_long(tmp_path, "A,75,HR,80\nB,1,HR,70\n"))
    assert data.obs.set_index("stay_id")["time"].to_dict() == pytest.approx({"A": 1.25, "B": 1 / 60})
