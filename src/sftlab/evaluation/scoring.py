"""sacreBLEU scores of prediction rows: the metrics per target language, per direction and macro-averaged.

Torch-free on purpose: ``sftlab.evaluation.translation`` (generation) and ``sftlab.analysis`` (reads run dirs on a
laptop) both score with these, and the report must not pull in torch. BLEU tokenizes by the target language
(``ja-mecab`` for Japanese, ``zh`` for Chinese, ``13a`` otherwise); chrF and chrF++ need no tokenizer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

from sftlab.objectives import SCORES

BLEU_TOKENIZERS = {"ja": "ja-mecab", "zh": "zh"}


def metrics_for(target_lang: str) -> dict[str, Any]:
    return {
        "bleu": BLEU(tokenize=BLEU_TOKENIZERS.get(target_lang, "13a")),
        "chrf": CHRF(),
        "chrf_pp": CHRF(word_order=2),
    }


def score_predictions(predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """sacreBLEU scores per direction and their macro average, from prediction rows.

    Each row needs ``direction``, ``target_lang``, ``hypothesis``, ``reference``, ``empty`` and ``truncated``.
    """
    by_direction: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in predictions:
        by_direction[row["direction"]].append(row)
    directions: dict[str, Any] = {}
    for direction, rows in sorted(by_direction.items()):
        hypotheses = [row["hypothesis"] for row in rows]
        references = [[row["reference"] for row in rows]]
        entry: dict[str, Any] = {
            "pairs": len(rows),
            "empty": sum(bool(row["empty"]) for row in rows),
            "truncated": sum(bool(row["truncated"]) for row in rows),
            "signatures": {},
        }
        for name, metric in metrics_for(rows[0]["target_lang"]).items():
            entry[name] = metric.corpus_score(hypotheses, references).score
            entry["signatures"][name] = str(metric.get_signature())
        directions[direction] = entry
    macro = {name: sum(d[name] for d in directions.values()) / len(directions) for name in SCORES}
    counts = {key: sum(d[key] for d in directions.values()) for key in ("pairs", "empty", "truncated")}
    return {"directions": directions, "macro": macro, "counts": counts}
