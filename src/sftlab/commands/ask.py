"""``sftlab ask`` and ``sftlab translate``: put questions to a trained run's model.

    sftlab ask RUN_DIR "Why do coastal cities have milder winters?"
    sftlab ask RUN_DIR --flag logician --language Japanese "..."      # any flag and language of the data
    sftlab ask RUN_DIR --temperature 0.7 --top-p 0.9 --seed 1 "..."   # sampled instead of greedy
    sftlab ask RUN_DIR --file questions.jsonl --out answers.jsonl     # batched, greedy
    sftlab ask RUN_DIR                                                # interactive: a question a line, `exit` ends
    sftlab translate RUN_DIR --direction ja-en "次の駅で急行に乗り換えます。"

The run's own config (``RUN_DIR/.hydra/config.yaml``) decides the base model, the prompt format, the backend and the
translator request, so a run is asked the way it was trained and evaluated. A single question streams its tokens as
they are generated, then the reasoning and the response are printed as read off the format's tags. Nothing is
written into the run dir except by the tracker (an ``ask`` or ``translate`` job of the run's logger).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sftlab import rundir
from sftlab.commands import builders
from sftlab.config import Backend, BackendConfig, TrainConfig, register_configs, to_schema
from sftlab.data.prompts import PromptFormat
from sftlab.data.records import FLAGS, LANGUAGE_CODES, LANGUAGES, TranslationPair, parse_direction
from sftlab.data.sources import read_json_objects
from sftlab.errors import SftlabError
from sftlab.models.loading import describe, for_inference, load_adapter
from sftlab.process import this_process
from sftlab.tracking import NullTracker, Tracker, create_tracker

INTERRUPTED = 130
ASK_MAX_NEW_TOKENS = 256
EXIT_WORDS = {"exit", "quit"}


def run_config(run_dir: Path, backend: str | None = None) -> TrainConfig:
    """The typed config a run was trained with; refuses a dir that is not a trained run."""
    config_file = run_dir / rundir.HYDRA_CONFIG
    if not config_file.is_file():
        raise SftlabError(f"{run_dir}: not a run dir (no {rundir.HYDRA_CONFIG})")
    if not (run_dir / rundir.ADAPTER / "adapter_config.json").is_file():
        raise SftlabError(f"{run_dir}: the run has no trained adapter ({rundir.ADAPTER}/adapter_config.json)")
    register_configs()
    try:
        cfg = to_schema(OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(config_file)))
    except OmegaConfBaseException as error:
        raise SftlabError(f"{config_file}: not a config this sftlab reads: {str(error).splitlines()[0]}") from None
    if backend is not None:
        cfg = dataclasses.replace(cfg, backend=BackendConfig(name=Backend(backend)))
    return cfg


@dataclass
class TrainedModel:
    """A run's base model with its adapter, ready to generate."""

    cfg: TrainConfig
    model: Any
    tokenizer: Any
    prompt_format: PromptFormat


def load_trained(run_dir: Path, cfg: TrainConfig) -> TrainedModel:
    run = builders.runtime(cfg, this_process())  # first: Unsloth patches transformers before it loads
    base = builders.base_model(cfg, run)
    model = load_adapter(base.model, run_dir / rundir.ADAPTER)
    for_inference(model, run.backend)
    return TrainedModel(cfg, model, base.tokenizer, builders.prompt_format(cfg.prompt, base.tokenizer))


def ask_tracker(cfg: TrainConfig, run_dir: Path, job_type: str, track: bool) -> Tracker:
    """A job of the run's own logger, beside the run's training job."""
    if not track:
        return NullTracker()
    return create_tracker(
        cfg.logger,
        dataclasses.asdict(cfg),
        run_dir,
        name=f"{cfg.run_name or run_dir.name}-{job_type}",
        group=cfg.logger.group,
        tags=[*cfg.logger.tags, job_type, f"prompt:{cfg.prompt.name}", f"model:{cfg.model.name}"],
        extra_config={"run_dir": str(run_dir)},
        job_type=job_type,
    )


# ------------------------------------------------------------------------------------------------------- requests


def language_name(value: str) -> str:
    """English, Japanese or Chinese, also given as en, ja or zh."""
    name = LANGUAGE_CODES.get(value, value)
    if name not in LANGUAGES:
        raise SftlabError(f"--language must be one of {', '.join(LANGUAGES)} (or en, ja, zh), got {value!r}")
    return name


def ask_record(args: argparse.Namespace, question: str, row: dict[str, Any]) -> dict[str, Any]:
    """The record a question becomes, with the options' flag, language, input and reasoning (a file row's own win)."""
    from sftlab.evaluation.answers import question_record

    flag = str(row.get("flag", args.flag))
    if flag not in FLAGS:
        raise SftlabError(f"flag must be one of {', '.join(FLAGS)}, got {flag!r}")
    language = language_name(str(row.get("language", args.language)))
    input_text, reasoning = str(row.get("input", args.input)), str(row.get("reasoning", args.reasoning))
    return question_record(question, input_text, flag, language, reasoning)


def translate_record(cfg: TrainConfig, args: argparse.Namespace, text: str, row: dict[str, Any]) -> dict[str, Any]:
    """The record a text to translate becomes: a translator request as the run's evaluation renders one."""
    from sftlab.evaluation.translation import translation_request

    direction = row.get("direction", args.direction)
    if not direction:
        raise SftlabError("translate needs a direction: --direction SOURCE-TARGET (e.g. ja-en)")
    source, target = parse_direction(str(direction), "translate", "the direction")
    request = cfg.eval.request
    if target not in request.language_names.get(source, {}):
        raise SftlabError(f"the run's eval.request has no {source}-{target} translator request")
    return translation_request(TranslationPair("", text, "", source, target), request)


# ------------------------------------------------------------------------------------------------------ answering


def print_answer(answer: Any, max_new_tokens: int) -> None:
    if answer.reasoning is not None:
        print(f"reasoning: {answer.reasoning}")
    print(f"response: {answer.response}")
    if not answer.stopped:
        print(f"(cut at --max-new-tokens {max_new_tokens})")


def answer_one(trained: TrainedModel, record: dict[str, Any], args: argparse.Namespace) -> None:
    from sftlab.evaluation.answers import Sampling, answer_streamed

    sampling = Sampling(args.temperature, args.top_p, args.seed)
    prompt = trained.prompt_format.render_prompt(record)
    answer = answer_streamed(trained.model, trained.tokenizer, prompt, args.max_new_tokens, sampling)
    print_answer(answer, args.max_new_tokens)


def interactive(trained: TrainedModel, to_record: Callable[[str], dict], args: argparse.Namespace) -> None:
    """One question a line until end of input or ``exit``."""
    print("one request a line; `exit` or Ctrl-D ends", file=sys.stderr)
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            print()
            return
        if line in EXIT_WORDS:
            return
        if line:
            answer_one(trained, to_record(line), args)


def read_rows(path: Path, text_keys: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(where, text, row)`` per object of a JSONL or JSON-array file; the text under the first of ``text_keys``
    a row has."""
    rows = []
    for where, row in read_json_objects(path):
        text = next((row[key] for key in text_keys if key in row), None)
        if not isinstance(text, str) or not text.strip():
            raise SftlabError(f"{where}: needs a text field ({' or '.join(text_keys)})")
        rows.append((where, text, row))
    if not rows:
        raise SftlabError(f"{path}: no rows")
    return rows


def answer_file(
    trained: TrainedModel, requests: list[tuple[dict[str, Any], dict[str, Any]]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every row's answer, generated greedily in batches, as rows of ``--out``."""
    from sftlab.evaluation.answers import answer_batch

    prompts = [trained.prompt_format.render_prompt(record) for record, _ in requests]
    batch_size = args.batch_size or trained.cfg.eval.batch_size
    answers = answer_batch(trained.model, trained.tokenizer, prompts, batch_size, args.max_new_tokens)
    return [{**row, **dataclasses.asdict(answer)} for (_, row), answer in zip(requests, answers, strict=True)]


# --------------------------------------------------------------------------------------------------------- the CLI


def add_common_arguments(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("run_dir", type=Path, help="a trained run dir (holds .hydra/ and adapter/)")
    parser.add_argument(text, nargs="?", help=f"the {text}; none opens an interactive prompt")
    parser.add_argument("--max-new-tokens", type=int, help="the answer's length limit in tokens")
    parser.add_argument("--temperature", type=float, default=0.0, help="> 0 samples (default 0: greedy)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling's probability mass")
    parser.add_argument("--seed", type=int, help="seed of the sampling")
    parser.add_argument("--file", type=Path, help="a JSONL or JSON-array file of requests, answered in batches")
    parser.add_argument("--out", type=Path, help="the JSONL file --file's answers go to")
    parser.add_argument("--batch-size", type=int, help="--file's batch size (default: the run's eval.batch_size)")
    parser.add_argument("--backend", choices=[b.value for b in Backend], help="default: the run's backend")
    parser.add_argument("--no-track", action="store_true", help="no tracker job, whatever the run's logger")


def ask_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sftlab ask",
        description="Ask a trained run's model a question, in the run's own prompt format.",
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, "question")
    parser.add_argument("--input", default="", help="context for the question (the record's input)")
    parser.add_argument("--flag", default="AI assistant", help=f"the persona: {', '.join(FLAGS)}")
    parser.add_argument("--language", default="English", help="the question's language: English, Japanese, Chinese")
    parser.add_argument("--reasoning", default="", help="how to approach it: the prompt's reasoning section")
    return parser


def translate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sftlab translate",
        description="Translate with a trained run's model, as a translator request of its evaluation.",
        epilog="  sftlab translate RUN_DIR --direction ja-en TEXT\n"
        "  sftlab translate RUN_DIR --direction zh-en --file texts.jsonl --out translations.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser, "text")
    parser.add_argument("--direction", help="SOURCE-TARGET: ja-en, en-ja, zh-en, zh-ja, ... (a --file row's own wins)")
    return parser


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    text = getattr(args, "question", None) or getattr(args, "text", None)
    if args.file is not None and (args.out is None or text):
        parser.error("--file needs --out and no question on the command line")
    if args.out is not None and args.file is None:
        parser.error("--out goes with --file")
    if args.file is not None and args.temperature > 0:
        parser.error("--file answers greedily; leave out --temperature")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be >= 1")
    if args.temperature < 0 or not 0 < args.top_p <= 1:
        parser.error("--temperature must be >= 0 and --top-p in (0, 1]")


def run_command(command: str, argv: list[str] | None) -> int:
    parser = ask_parser() if command == "ask" else translate_parser()
    args = parser.parse_intermixed_args(argv)  # the question may come before or after the options
    check_args(args, parser)
    text = args.question if command == "ask" else args.text
    tracker: Tracker = NullTracker()
    failed = True
    try:
        cfg = run_config(args.run_dir, args.backend)
        if args.max_new_tokens is None:
            args.max_new_tokens = ASK_MAX_NEW_TOKENS if command == "ask" else cfg.eval.max_new_tokens
        if command == "ask":
            text_keys = ("question", "instruction")
            to_record = functools.partial(ask_record, args)
        else:
            text_keys = ("text", "source")
            to_record = functools.partial(translate_record, cfg, args)
        # Every request is made before the model loads, so a wrong option or row fails at once.
        requests = []
        for where, request_text, row in read_rows(args.file, text_keys) if args.file else [("", text or "", {})]:
            try:
                requests.append((to_record(request_text, row), row))
            except SftlabError as error:
                raise SftlabError(f"{where}: {error}" if where else str(error)) from None
        trained = load_trained(args.run_dir, cfg)
        tracker = ask_tracker(cfg, args.run_dir, command, not args.no_track)
        tracker.log_model(describe(trained.model))
        if args.file is not None:
            rundir.write_jsonl(args.out, answer_file(trained, requests, args))
            print(f"answered {len(requests)} request(s): {args.out}")
        elif text:
            answer_one(trained, requests[0][0], args)
        else:
            interactive(trained, lambda line: to_record(line, {}), args)
        failed = False
    except SftlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    finally:
        tracker.finish(failed=failed)
    link = tracker.link()
    if link:
        print(f"tracked as W&B run {link['wandb_id']} {link.get('wandb_url', '')}".rstrip())
    return 0


def ask_main(argv: list[str] | None = None) -> int:
    return run_command("ask", argv)


def translate_main(argv: list[str] | None = None) -> int:
    return run_command("translate", argv)
