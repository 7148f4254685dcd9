"""Translation evaluation: test pairs as translator requests, batched greedy generation, sacreBLEU scores.

BLEU tokenizes by the target language (``ja-mecab`` for Japanese, ``zh`` for Chinese, ``13a`` otherwise); chrF
and chrF++ need no tokenizer. Scores are per direction and macro-averaged, each with its sacreBLEU signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab import rundir
from sftlab.config import EvalConfig, TranslationRequestConfig
from sftlab.data.prompts import PromptFormat
from sftlab.data.records import TranslationPair
from sftlab.evaluation.generation import decoder_name, generate
from sftlab.evaluation.scoring import score_predictions
from sftlab.objectives import SCORES
from sftlab.rundir import EvalScores

STOP_MARKER = "<|"  # every section tag of the template formats starts with it


def translation_request(pair: TranslationPair, request: TranslationRequestConfig) -> dict[str, Any]:
    """A test pair as a translator-flag record, written like the training data's translation records."""
    target = request.language_names[pair.source_lang][pair.target_lang]
    return {
        "instruction": request.instructions[pair.source_lang].format(target=target),
        "input": pair.source,
        "category": "translation",
        "language": request.record_languages[pair.source_lang],
        "field": request.field,
        "keywords": list(request.keywords),
        "flag": "translator",
        "reasoning": request.reasoning,
        "transformed_input": "",
        "output": "",
    }


def extract_response(generated: str, eos_token: str) -> str:
    """The answer: generated text up to the end-of-sequence token or the next section tag."""
    text = generated.split(eos_token, 1)[0] if eos_token else generated
    return text.split(STOP_MARKER, 1)[0].strip()


def test_set_fingerprint(pairs: Sequence[TranslationPair]) -> str:
    """Identifies the exact test pairs, so reports refuse to compare runs scored on different sets."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(f"{pair.id}\t{pair.source}\t{pair.reference}\n".encode())
    return digest.hexdigest()


def evaluate_translations(
    model: Any,
    tokenizer: Any,
    prompt_format: PromptFormat,
    pairs: Sequence[TranslationPair],
    eval_cfg: EvalConfig,
    run_dir: Path,
) -> tuple[EvalScores, list[dict[str, Any]]]:
    """Generate a translation for every pair, score them and write predictions.jsonl.

    Returns the scores (the command writes them as eval.json) and the prediction rows.
    """
    prompts = [prompt_format.render_prompt(translation_request(pair, eval_cfg.request)) for pair in pairs]
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        generations = generate(
            model, tokenizer, prompts, eval_cfg.batch_size, eval_cfg.max_new_tokens, eval_cfg.num_beams
        )
    finally:
        tokenizer.padding_side = padding_side
    predictions = []
    for pair, prompt, (raw, stopped) in zip(pairs, prompts, generations, strict=True):
        hypothesis = extract_response(raw, tokenizer.eos_token)
        predictions.append(
            {
                "id": pair.id,
                "direction": pair.direction,
                "source_lang": pair.source_lang,
                "target_lang": pair.target_lang,
                "source": pair.source,
                "reference": pair.reference,
                "hypothesis": hypothesis,
                "raw_generation": raw,
                "empty": not hypothesis,
                "truncated": not stopped and STOP_MARKER not in raw,
                "prompt": prompt,
            }
        )
    scores = EvalScores.from_json(
        {
            **score_predictions(predictions),
            "test_file": eval_cfg.test_file,
            "test_set_sha256": test_set_fingerprint(pairs),
            "prompt_format": prompt_format.name,
            "generation": {
                "max_new_tokens": eval_cfg.max_new_tokens,
                "num_beams": eval_cfg.num_beams,
                "decoder": decoder_name(model, eval_cfg.num_beams),
            },
        }
    )
    rundir.write_jsonl(run_dir / rundir.PREDICTIONS, predictions)
    return scores, predictions


def print_scores(scores: EvalScores) -> None:
    """The per-direction table a run prints at its end."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="translation quality (sacreBLEU)")
    for column in ("direction", "pairs", "BLEU", "chrF", "chrF++", "empty", "truncated"):
        table.add_column(column, justify="left" if column == "direction" else "right")
    for direction, entry in scores.directions.items():
        table.add_row(
            direction,
            str(entry.pairs),
            f"{entry.bleu:.1f}",
            f"{entry.chrf:.1f}",
            f"{entry.chrf_pp:.1f}",
            str(entry.empty),
            str(entry.truncated),
        )
    macro = scores.macro
    table.add_row("macro", "", *(f"{macro[name]:.1f}" for name in SCORES), "", "")
    Console().print(table)
