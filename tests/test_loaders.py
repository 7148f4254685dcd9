"""Bringing your own data: every file type, folders, Hub ids, the common formats, column mapping, custom test sets
and relative paths, each with real files written here (the Hub is out of reach on this machine)."""

import json
import time
from pathlib import Path

import datasets
import pandas as pd
import pytest

from conftest import ROOT, compose_train
from sftlab.config import to_schema
from sftlab.data import formats
from sftlab.data import records as data
from sftlab.data.records import DataError
from sftlab.data.splits import load_splits, load_test_pairs
from sftlab.evaluation.scoring import score_predictions

RECIPE = json.loads((ROOT / "tests" / "golden" / "recipe_records.json").read_text(encoding="utf-8"))
ROWS = [RECIPE[name] for name in sorted(RECIPE)]  # keywords are strings: every file type can hold them


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_as(path: Path, rows) -> Path:
    """``rows`` in the file type ``path``'s suffix names, written by the tools people write them with."""
    suffix = path.suffix
    if suffix == ".jsonl":
        return write_jsonl(path, rows)
    if suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    elif suffix in (".csv", ".tsv"):
        pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    elif suffix == ".arrow":
        saved = path.with_suffix("")
        datasets.Dataset.from_list(rows).save_to_disk(str(saved))
        (arrow,) = saved.glob("*.arrow")
        arrow.rename(path)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow"])
def test_every_file_type_gives_the_same_records(tmp_path, suffix):
    expected = data.load_records([write_jsonl(tmp_path / "reference.jsonl", ROWS)])
    loaded = data.load_records([write_as(tmp_path / f"records{suffix}", ROWS)])
    assert loaded == expected and len(loaded) == len(ROWS)
    assert loaded[0].keywords == ROWS[0]["keywords"]


def test_csv_cells_stay_strings_and_errors_name_the_record(tmp_path):
    rows = [{"instruction": "Add 2 and 2.", "input": "42", "output": "4"}, {"instruction": "Say no.", "output": ""}]
    path = write_as(tmp_path / "qa.csv", rows)
    with pytest.raises(DataError) as error:
        data.load_records([path])
    assert str(error.value) == f"{path}: record 1: field 'output' is empty"
    records = data.load_records([write_as(tmp_path / "ok.csv", rows[:1])])
    assert records[0].input == "42" and records[0].format == "alpaca"


def test_parquet_errors_name_file_record_and_field(tmp_path):
    path = write_as(tmp_path / "bad.parquet", [ROWS[0], {**ROWS[1], "flag": "wizard"}])
    with pytest.raises(DataError, match=r"bad.parquet: record 1: field 'flag' has unknown value 'wizard'") as error:
        data.load_records([path])
    assert "\n" not in str(error.value)


def test_a_folder_is_read_by_split(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS[:4])
    write_jsonl(folder / "validation.jsonl", ROWS[4:])
    assert len(data.load_records([folder])) == 4
    assert [r.instruction for r in data.load_records([folder], split="validation")] == [
        row["instruction"] for row in ROWS[4:]
    ]
    with pytest.raises(DataError, match=r"my_dataset: cannot load split 'test': ") as error:
        data.load_records([folder], split="test")
    assert "\n" not in str(error.value)


def test_a_save_to_disk_folder_loads_each_split(tmp_path):
    folder = tmp_path / "saved"
    splits = {"train": ROWS[:3], "validation": ROWS[3:]}
    datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}).save_to_disk(
        str(folder)
    )
    assert len(data.load_records([folder])) == 3 and len(data.load_records([folder], split="validation")) == 3
    with pytest.raises(DataError, match=r"saved: no split 'test' \(it has: train, validation\)"):
        data.load_records([folder], split="test")


def test_a_hub_id_goes_to_load_dataset_with_split_and_revision(monkeypatch):
    """The real ``datasets.load_dataset`` path; offline here, so it must fail fast, in one line, naming all three."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as error:
        data.load_records(["someorg/reasoning-sft"], split="train[:100]", revision="v1.0")
    message = str(error.value)
    assert message.startswith("someorg/reasoning-sft: not a file or folder here")
    assert "split train[:100], revision v1.0" in message and "\n" not in message


@pytest.mark.parametrize(
    "rows,fmt",
    [
        (
            [{"instruction": "Name a prime.", "input": "", "output": "7"}, {"instruction": "Hi", "output": "Hello"}],
            "alpaca",
        ),
        (
            [
                {
                    "conversations": [
                        {"from": "system", "value": "You are terse."},
                        {"from": "human", "value": "Name a prime."},
                        {"from": "gpt", "value": "7"},
                    ]
                }
            ],
            "sharegpt",
        ),
        (
            [{"messages": [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}]}],
            "messages",
        ),
    ],
)
def test_common_formats_are_read_and_say_what_they_lack(tmp_path, rows, fmt):
    records = data.load_records([write_jsonl(tmp_path / f"{fmt}.jsonl", rows)])
    assert records[0].format == fmt and records[0].instruction == "Name a prime." and records[0].output == "7"
    assert records[0].reasoning == records[0].flag == records[0].keywords == ""
    assert records[0].system == ("You are terse." if fmt == "sharegpt" else "")
    missing = ", ".join(formats.absent_fields(fmt))
    assert data.absent_parts_note(records) == (
        f"{fmt} records ({len(rows)}) have no {missing}: the prompt parts that show them are left out"
    )
    assert data.absent_parts_note(data.load_records([write_jsonl(tmp_path / "r.jsonl", ROWS)])) is None


@pytest.mark.parametrize(
    "row,pattern",
    [
        ({"conversations": [{"from": "human", "value": "a"}]}, r"field 'conversations' has turns user; expected"),
        (
            {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}] * 2},
            r"field 'conversations' has more than one user turn: sftlab trains single-turn",
        ),
        ({"messages": [{"role": "robot", "content": "a"}]}, r"field 'messages\[0\].role' has unknown role 'robot'"),
        ({"messages": "hello"}, r"field 'messages' must be a non-empty list of turns"),
        ({"question": "a", "answer": "b"}, r"not a known record format \(fields: answer, question\)"),
        ({"instruction": "a"}, r"field 'output' is missing"),
    ],
)
def test_bad_rows_of_the_common_formats(tmp_path, row, pattern):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(DataError, match=f"bad.jsonl: line 1: {pattern}") as error:
        data.load_records([path])
    assert "\n" not in str(error.value)


def test_columns_map_your_names_onto_the_schema(tmp_path):
    rows = [{"question": "What is 2 + 2?", "context": "", "answer": "4"}]
    path = write_as(tmp_path / "qa.csv", rows)
    columns = {"instruction": "question", "input": "context", "output": "answer"}
    (record,) = data.load_records([path], columns=columns)
    assert (record.instruction, record.input, record.output, record.format) == ("What is 2 + 2?", "", "4", "alpaca")
    with pytest.raises(DataError, match=r"qa.csv: record 0: field 'query' is missing \(data.columns.instruction"):
        data.load_records([path], columns={"instruction": "query", "output": "answer"})
    with pytest.raises(DataError, match=r"data.columns: unknown field\(s\) question"):
        data.load_records([path], columns={"question": "q"})


def test_a_format_can_be_forced(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b", "category": "odd"}])
    assert data.load_records([path], fmt="alpaca")[0].output == "b"  # auto would call it a reasoning record
    with pytest.raises(DataError, match=r"line 1: field 'language' is missing"):
        data.load_records([path])


def test_ten_thousand_records_validate_in_one_fast_pass(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "big.jsonl", [ROWS[i % len(ROWS)] for i in range(10_000)])
    calls = []
    parse = data.parse_record
    monkeypatch.setattr(data, "parse_record", lambda *args: calls.append(1) or parse(*args))
    start = time.perf_counter()
    records = data.load_records([path])
    seconds = time.perf_counter() - start
    assert len(records) == 10_000 and len(calls) == 10_000  # each record checked once
    assert seconds < 5, f"10,000 records took {seconds:.1f} s to validate"


def test_relative_paths_resolve_against_the_directory_run_from(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    write_jsonl(tmp_path / "mine" / "train.jsonl", ROWS)
    monkeypatch.chdir(tmp_path)
    assert len(data.load_records(["mine/train.jsonl"])) == len(ROWS)
    with pytest.raises(DataError) as error:
        data.load_records(["mine/missing.jsonl"])
    assert str(error.value) == f"mine/missing.jsonl: no such file or folder (relative to {tmp_path})"


def test_load_splits_says_which_parts_a_format_drops(tmp_path, capsys):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(10)])
    cfg = to_schema(compose_train(["data=custom", f"data.train_files=[{path}]"]))
    train, val = load_splits(cfg.data, seed=1)
    assert len(train) == 9 and len(val) == 1 and train[0]["keywords"] == ""
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "[sftlab] data: alpaca records (10) have no category, language, field, keywords, flag, reasoning, "
        "transformed_input: the prompt parts that show them are left out"
    ]


# Custom test sets


def test_pairs_by_direction_by_languages_or_by_mapped_columns(tmp_path):
    by_direction = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"direction": "ja-en", "source": "こんにちは", "reference": "Hello"},
            {"direction": "en-zh", "source": "Thank you", "reference": "谢谢"},
        ],
    )
    pairs = data.load_translation_pairs(by_direction)
    assert [(p.direction, p.id) for p in pairs] == [("ja-en", "line-1"), ("en-zh", "line-2")]
    by_languages = write_jsonl(
        tmp_path / "b.jsonl",
        [{"id": "x", "src": "Good night", "tgt": "おやすみ", "source_lang": "en", "target_lang": "ja"}],
    )
    (pair,) = data.load_translation_pairs(by_languages, columns={"source": "src", "reference": "tgt"})
    assert (pair.id, pair.source, pair.reference, pair.direction) == ("x", "Good night", "おやすみ", "en-ja")
    plain = write_as(tmp_path / "zh_ja.csv", [{"zh": "早上好", "ja": "おはよう"}, {"zh": "再见", "ja": "さようなら"}])
    pairs = data.load_translation_pairs(plain, ["zh-ja"], columns={"source": "zh", "reference": "ja"})
    assert [p.direction for p in pairs] == ["zh-ja", "zh-ja"] and pairs[1].reference == "さようなら"


@pytest.mark.parametrize(
    "row,pattern",
    [
        ({"direction": "fr-en"}, r"field 'direction' has unknown language code 'fr' \(expected one of: en, ja, zh\)"),
        ({"direction": "en-en"}, r"the direction en-en translates a language into itself"),
        ({"direction": "japanese"}, r"field 'direction' is not SOURCE-TARGET \(got 'japanese'; e.g. ja-en\)"),
        ({"source_lang": "ja"}, r"field 'target_lang' is missing \(or give 'direction', e.g. ja-en\)"),
        ({}, r"field 'source_lang' is missing"),
    ],
)
def test_bad_directions_fail_in_one_line(tmp_path, row, pattern):
    path = write_jsonl(tmp_path / "t.jsonl", [{"source": "a", "reference": "b", **row}])
    with pytest.raises(DataError, match=f"t.jsonl: line 1: {pattern}") as error:
        data.load_translation_pairs(path)
    assert "\n" not in str(error.value)


def test_every_direction_is_requested_and_scored_with_its_target_tokenizer(tmp_path):
    from sftlab.evaluation.translation import translation_request

    sentences = {"en": "Good morning.", "ja": "おはようございます。", "zh": "早上好。"}
    rows = [
        {"direction": f"{s}-{t}", "source": sentences[s], "reference": sentences[t]}
        for s in sentences
        for t in sentences
        if s != t
    ]
    path = write_as(tmp_path / "six.parquet", rows)
    cfg = to_schema(compose_train([f"eval.test_file={path}"]))
    pairs = load_test_pairs(cfg.eval)
    assert len(pairs) == 6
    for pair in pairs:
        request = translation_request(pair, cfg.eval.request)
        assert request["input"] == pair.source and request["flag"] == "translator"
    rows = [{**vars(p), "direction": p.direction, "hypothesis": p.reference, "empty": 0, "truncated": 0} for p in pairs]
    scores = score_predictions(rows)
    tokenizers = {d: entry["signatures"]["bleu"].split("tok:")[1] for d, entry in scores["directions"].items()}
    expected = {
        "en-ja": "ja-mecab",
        "en-zh": "zh|",
        "ja-en": "13a|",
        "ja-zh": "zh|",
        "zh-en": "13a|",
        "zh-ja": "ja-mecab",
    }
    assert all(tokenizers[d].startswith(prefix) for d, prefix in expected.items()), tokenizers
    assert all(entry["chrf"] == 100 for entry in scores["directions"].values())


def test_columns_override_is_typed(tmp_path):
    from hydra.errors import ConfigCompositionException

    path = write_as(tmp_path / "qa.csv", [{"question": "What is 2 + 2?", "answer": "4"}] * 3)
    overrides = ["data=custom", f"data.train_files=[{path}]", "data.columns={instruction: question, output: answer}"]
    train, val = load_splits(to_schema(compose_train(overrides)).data, seed=1)
    assert train[0]["instruction"] == "What is 2 + 2?" and len(train) + len(val) == 3
    with pytest.raises(ConfigCompositionException):
        compose_train([*overrides[:2], "data.columns={instrucion: question}"])


def test_csv_with_a_byte_order_mark_or_in_latin_1(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffinstruction,output\nhi,yo\n".encode())
    assert data.load_records([bom])[0].instruction == "hi"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("instruction,output\ncafé,yo\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: not UTF-8 text"):
        data.load_records([latin])
