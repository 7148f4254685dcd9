"""Translation evaluation: test pairs as translator requests, batched greedy generation, sacreBLEU scores.

BLEU tokenizes by the target language (``ja-mecab`` for Japanese, ``zh`` for Chinese, ``13a`` otherwise); chrF
and chrF++ need no tokenizer. Scores are per direction and macro-averaged, each with its sacreBLEU signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sftlab import rundir
from sftlab.data.prompts import PromptFormat, prompt_token_ids
from sftlab.data.records import TranslationPair
from sftlab.evaluation.scoring import score_predictions
from sftlab.objectives import SCORES

STOP_MARKER = "<|"  # every section tag of the template formats starts with it


def translation_request(pair: TranslationPair, request: Any) -> dict[str, Any]:
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


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    batch_size: int,
    max_new_tokens: int,
    num_beams: int = 1,
) -> list[tuple[str, bool]]:
    """Greedy (or beam) generation in left-padded batches, longest prompts first.

    Returns (decoded continuation, stopped) per prompt, in input order; ``stopped`` is False when the
    generation ran into ``max_new_tokens`` without an end-of-sequence token.
    """
    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    results: list[tuple[str, bool] | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    for start in tqdm(range(0, len(order), batch_size), desc="Generating", unit="batch"):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            ids = encoded[index]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
        )
        for row, index in enumerate(batch):
            new_tokens = output[row, width:].tolist()
            stopped = tokenizer.eos_token_id in new_tokens
            if stopped:
                new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id) + 1]
            results[index] = (tokenizer.decode(new_tokens, skip_special_tokens=False), stopped)
    return [result for result in results if result is not None]


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
    eval_cfg: Any,
    run_dir: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate a translation for every pair, score them, write predictions.jsonl and eval.json.

    Returns the scores (eval.json) and the prediction rows (predictions.jsonl).
    """
    prompts = [prompt_format.render_prompt(translation_request(pair, eval_cfg.request)) for pair in pairs]
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        generations = generate(
            model,
            tokenizer,
            prompts,
            int(eval_cfg.batch_size),
            int(eval_cfg.max_new_tokens),
            int(eval_cfg.num_beams),
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
    scores = score_predictions(predictions)
    scores.update(
        test_file=str(eval_cfg.test_file),
        test_set_sha256=test_set_fingerprint(pairs),
        prompt_format=prompt_format.name,
        generation={"max_new_tokens": int(eval_cfg.max_new_tokens), "num_beams": int(eval_cfg.num_beams)},
    )
    rundir.write_jsonl(run_dir / rundir.PREDICTIONS, predictions)
    rundir.write_json(run_dir / rundir.EVAL, scores)
    return scores, predictions


def print_scores(scores: dict[str, Any]) -> None:
    """The per-direction table a run prints at its end."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="translation quality (sacreBLEU)")
    for column in ("direction", "pairs", "BLEU", "chrF", "chrF++", "empty", "truncated"):
        table.add_column(column, justify="left" if column == "direction" else "right")
    for direction, entry in scores["directions"].items():
        table.add_row(
            direction,
            str(entry["pairs"]),
            f"{entry['bleu']:.1f}",
            f"{entry['chrf']:.1f}",
            f"{entry['chrf_pp']:.1f}",
            str(entry["empty"]),
            str(entry["truncated"]),
        )
    macro = scores["macro"]
    table.add_row("macro", "", *(f"{macro[name]:.1f}" for name in SCORES), "", "")
    Console().print(table)
