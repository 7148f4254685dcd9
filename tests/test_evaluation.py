import json
import shutil

import pytest
from sacrebleu.metrics import BLEU, CHRF

from conftest import compose_train, run_module
from sftlab import rundir
from sftlab.errors import SftlabError
from sftlab.evaluation.translation import extract_response, score_predictions

JA_REF = "信号トラブルのため、京都行きの電車は四十分遅れています。"
JA_HYP = "信号のトラブルで、京都行きの電車は四十分遅れています。"
ZH_REF = "由于大雾，今天上午从上海出发的航班全部推迟起飞。"
ZH_HYP = "因为大雾，今天上午从上海出发的航班都推迟起飞了。"


def row(direction, hypothesis, reference):
    source_lang, target_lang = direction.split("-")
    return {
        "direction": direction,
        "target_lang": target_lang,
        "hypothesis": hypothesis,
        "reference": reference,
        "empty": not hypothesis,
        "truncated": False,
    }


def test_scores_in_eval_json_match_an_independent_recomputation(tiny_run):
    scores = json.loads((tiny_run / rundir.EVAL).read_text())
    predictions = rundir.read_jsonl(tiny_run / rundir.PREDICTIONS)
    assert len(predictions) == scores["counts"]["pairs"] == 8
    tokenizers = {"ja": "ja-mecab", "zh": "zh", "en": "13a"}
    for direction, entry in scores["directions"].items():
        rows = [p for p in predictions if p["direction"] == direction]
        hyps, refs = [p["hypothesis"] for p in rows], [[p["reference"] for p in rows]]
        target = direction.split("-")[1]
        assert entry["bleu"] == pytest.approx(BLEU(tokenize=tokenizers[target]).corpus_score(hyps, refs).score)
        assert entry["chrf"] == pytest.approx(CHRF().corpus_score(hyps, refs).score)
        assert entry["chrf_pp"] == pytest.approx(CHRF(word_order=2).corpus_score(hyps, refs).score)
        assert f"tok:{tokenizers[target]}" in entry["signatures"]["bleu"]
    directions = scores["directions"].values()
    assert scores["macro"]["chrf"] == pytest.approx(sum(d["chrf"] for d in directions) / len(directions))
    assert all(p["raw_generation"] for p in predictions), "the tiny model generated nothing for some pair"
    assert set(scores) >= {"test_set_sha256", "prompt_format", "counts", "macro", "directions"}


def test_a_perfect_hypothesis_set_scores_100():
    rows = [
        row("en-ja", JA_REF, JA_REF),
        row("zh-en", "All flights were delayed.", "All flights were delayed."),
        row("ja-zh", ZH_REF, ZH_REF),
    ]
    scores = score_predictions(rows)
    for entry in scores["directions"].values():
        assert entry["bleu"] == pytest.approx(100.0) and entry["chrf"] == pytest.approx(100.0)
    assert scores["macro"]["bleu"] == pytest.approx(100.0)


def test_japanese_and_chinese_bleu_tokenize_by_language():
    """With the default 13a tokenizer an unsegmented CJK sentence is one token, and a near miss scores 0."""
    scores = score_predictions([row("en-ja", JA_HYP, JA_REF), row("en-zh", ZH_HYP, ZH_REF)])["directions"]
    assert BLEU(tokenize="13a").corpus_score([JA_HYP], [[JA_REF]]).score == 0.0
    assert BLEU(tokenize="13a").corpus_score([ZH_HYP], [[ZH_REF]]).score == 0.0
    assert scores["en-ja"]["bleu"] > 30 and "tok:ja-mecab" in scores["en-ja"]["signatures"]["bleu"]
    assert scores["en-zh"]["bleu"] > 15 and "tok:zh" in scores["en-zh"]["signatures"]["bleu"]


def test_empty_and_truncated_outputs_are_counted():
    rows = [row("ja-en", "", "Hello there."), {**row("ja-en", "Hello", "Hello there."), "truncated": True}]
    entry = score_predictions(rows)["directions"]["ja-en"]
    assert entry["empty"] == 1 and entry["truncated"] == 1 and entry["pairs"] == 2


def test_response_extraction_stops_at_eos_and_at_the_next_tag():
    assert extract_response(" Hello world.<|im_end|>garbage", "<|im_end|>") == "Hello world."
    assert extract_response("Hello\n<|keywords|>x", "</s>") == "Hello"


def test_unknown_objective_is_refused():
    from sftlab.objectives import value as objective_value

    with pytest.raises(SftlabError, match="unknown eval.objective"):
        objective_value("meteor", {"macro": {}}, {})


def test_evaluate_cli_scores_a_trained_adapter(tiny_run, tmp_path):
    result = run_module(
        "sftlab.evaluate",
        "logger=none",
        "eval.max_pairs_per_direction=1",
        "eval.max_new_tokens=4",
        f"eval.adapter_dir={tiny_run / rundir.ADAPTER}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((tmp_path / rundir.EVAL).read_text())
    assert scores["counts"]["pairs"] == 4 and scores["adapter_dir"].endswith("adapter")
    assert scores["prompt_format"] == "reasoning_tags"  # taken from the adapter's own run


def test_evaluate_cli_refuses_missing_and_foreign_adapters(tiny_run, tmp_path):
    missing = run_module(
        "sftlab.evaluate", "logger=none", f"eval.adapter_dir={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'a'}"
    )
    assert missing.returncode == 1 and "not an adapter dir" in missing.stderr and "Traceback" not in missing.stderr
    foreign = tmp_path / "adapter"  # copied without its run config: the command's model is used
    shutil.copytree(tiny_run / rundir.ADAPTER, foreign)
    refused = run_module(
        "sftlab.evaluate",
        "logger=none",
        "model=tiny_random",
        "model.tiny.hidden_size=32",
        f"eval.adapter_dir={foreign}",
        f"hydra.run.dir={tmp_path / 'b'}",
    )
    assert refused.returncode == 1 and "adapter was trained on" in refused.stderr, refused.stderr[-2000:]


def test_translation_requests_read_like_the_training_data():
    from sftlab.data.records import TranslationPair
    from sftlab.evaluation.translation import translation_request

    request = compose_train().eval.request
    record = translation_request(TranslationPair("x", "你好", "こんにちは", "zh", "ja"), request)
    assert record["instruction"] == "请把下面的句子翻译成日文。" and record["language"] == "Chinese"
    assert record["flag"] == "translator" and record["input"] == "你好" and record["output"] == ""
