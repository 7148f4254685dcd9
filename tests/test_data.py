import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, compose_train, run_module
from sftlab.data import records as data
from sftlab.data.records import DataError

TRAIN = sorted((ROOT / "data" / "reasoning").glob("train_*.jsonl"))
VAL = sorted((ROOT / "data" / "reasoning").glob("val_*.jsonl"))
TEST_SET = ROOT / "data" / "translation_test.jsonl"
GOOD = json.loads((Path(__file__).parent / "golden" / "records.json").read_text(encoding="utf-8"))["english"]


def test_bundled_dataset_size_and_coverage():
    train, val = data.load_records(TRAIN), data.load_records(VAL)
    assert len(train) >= 300 and len(val) >= 60
    for records in (train, val):
        assert set(Counter(r.category for r in records)) == set(data.CATEGORIES)
        assert set(Counter(r.language for r in records)) == set(data.LANGUAGES)
        assert set(Counter(r.flag for r in records)) == set(data.FLAGS)
    assert all(r.flag == "translator" for r in train if r.category == "translation")
    assert all(not r.transformed_input for r in train if r.language == "English" or r.flag == "translator")
    seen = {(r.instruction, r.input) for r in train}
    assert not any((r.instruction, r.input) in seen for r in val), "validation repeats training records"


def test_config_points_at_the_bundled_files():
    cfg = compose_train()
    assert sorted(ROOT / f for f in cfg.data.train_files) == TRAIN
    assert sorted(ROOT / f for f in cfg.data.val_files) == VAL


def test_translation_test_set_directions_and_disjointness():
    pairs = data.load_translation_pairs(TEST_SET)
    counts = Counter(pair.direction for pair in pairs)
    for direction in ("ja-en", "en-ja", "zh-en", "zh-ja"):
        assert counts[direction] >= 40, direction
    assert len({pair.id for pair in pairs}) == len(pairs)
    training_text = "\n".join(
        f"{r.instruction}\n{r.input}\n{r.output}\n{r.transformed_input}" for r in data.load_records(TRAIN + VAL)
    )
    leaked = [pair.id for pair in pairs if pair.source in training_text or pair.reference in training_text]
    assert not leaked, f"test pairs found in the SFT data: {leaked}"


def test_test_set_filters_by_direction_and_caps():
    pairs = data.load_translation_pairs(TEST_SET, directions=["zh-ja"], max_per_direction=5)
    assert len(pairs) == 5 and {p.direction for p in pairs} == {"zh-ja"}
    with pytest.raises(DataError, match="no test pairs for direction"):
        data.load_translation_pairs(TEST_SET, directions=["en-zh"])
    with pytest.raises(DataError, match="eval.directions: direction 'fr-en' has unknown language code 'fr'"):
        data.load_translation_pairs(TEST_SET, directions=["fr-en"])


def write_lines(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


def without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


@pytest.mark.parametrize(
    "bad_record,pattern",
    [
        (without(GOOD, "reasoning"), r"line 2: field 'reasoning' is missing"),
        ({**GOOD, "output": 42}, r"line 2: field 'output' must be a string, got int"),
        ({**GOOD, "language": "French"}, r"line 2: field 'language' has unknown value 'French'"),
        ({**GOOD, "flag": "wizard"}, r"line 2: field 'flag' has unknown value 'wizard'"),
        ({**GOOD, "category": "chat"}, r"line 2: field 'category' has unknown value 'chat'"),
        ({**GOOD, "instruction": "  "}, r"line 2: field 'instruction' is empty"),
        ({**GOOD, "keywords": [1, 2]}, r"line 2: field 'keywords' must be a list of strings"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, bad_record, pattern):
    path = write_lines(tmp_path / "bad.jsonl", [GOOD, bad_record])
    with pytest.raises(DataError, match=pattern) as error:
        data.load_records([path])
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_empty_invalid_and_non_utf8_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        data.load_records([empty])
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl: line 2: invalid JSON"):
        data.load_records([broken])
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(json.dumps({**GOOD, "output": "café"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DataError, match="latin1.jsonl: not UTF-8 text"):
        data.load_records([latin1])
    with pytest.raises(DataError, match="missing.jsonl: no such file"):
        data.load_records([tmp_path / "missing.jsonl"])


def test_json_array_file_loads_and_reports_the_index(tmp_path):
    """The seed's alpaca_multi_language_train.json shape: a JSON array, keywords as one comma-separated string."""
    seed_shape = {**GOOD, "keywords": "Lake Baikal, depth", "transformed_input": None}
    path = tmp_path / "alpaca_multi_language_train.json"
    path.write_text(json.dumps([seed_shape, seed_shape], ensure_ascii=False, indent=2), encoding="utf-8")
    records = data.load_records([path])
    assert len(records) == 2 and records[0].keywords == "Lake Baikal, depth"  # as the recipe shows them
    path.write_text(json.dumps([seed_shape, without(seed_shape, "field")]), encoding="utf-8")
    with pytest.raises(DataError, match=r"record 1: field 'field' is missing"):
        data.load_records([path])


def test_bad_test_pairs(tmp_path):
    good = {"id": "x", "source": "こんにちは", "reference": "Hello", "source_lang": "ja", "target_lang": "en"}
    with pytest.raises(DataError, match=r"line 1: field 'reference' is missing"):
        data.load_translation_pairs(write_lines(tmp_path / "a.jsonl", [without(good, "reference")]))
    with pytest.raises(DataError, match=r"line 1: field 'target_lang' has unknown language code 'fr'"):
        data.load_translation_pairs(write_lines(tmp_path / "b.jsonl", [{**good, "target_lang": "fr"}]))


def test_split_is_seeded():
    records = data.load_records(TRAIN)
    train_a, val_a = data.split_records(records, 0.1, seed=1)
    train_b, val_b = data.split_records(records, 0.1, seed=1)
    assert val_a == val_b and len(val_a) == round(len(records) * 0.1) and len(train_a) + len(val_a) == len(records)
    assert data.split_records(records, 0.1, seed=2)[1] != val_a


def test_cli_bad_data_file_fails_with_one_clear_line(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "flag": "wizard"}])
    result = run_module(
        "sftlab.train", "model=tiny_random", "logger=none", f"data.train_files=[{bad}]", f"hydra.run.dir={tmp_path}/run"
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {bad}: line 2: field 'flag' has unknown value 'wizard'")
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "run" / "failure.json").read_text())["user_error"] is True
