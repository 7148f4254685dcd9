"""``sftlab COMMAND ...``: the one console script, dispatching to each command's own entry point.

The Hydra apps (train, evaluate, preview) get their arguments unchanged, so overrides, ``-m``, ``--cfg`` and
``--config-dir`` work as with ``python -m sftlab.<name>``; their ``--help`` is sftlab's (``conf/hydra/help``).
Shell completion goes through here too: bash asks ``sftlab -sc query=bash`` with the whole line in ``COMP_LINE``;
the command name is completed here, the rest by the Hydra app it names.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

# name -> (module, function, one line); Hydra apps read sys.argv, the others take argv.
HYDRA_APPS = {
    "train": ("sftlab.commands.train", "main", "LoRA SFT of the configured model, then translation scores"),
    "evaluate": (
        "sftlab.commands.evaluate",
        "main",
        "translation scores of an adapter (or the base model alone)",
    ),
    "preview": ("sftlab.commands.preview", "main", "the training records exactly as training sees them"),
}
COMMANDS = {
    "report": ("sftlab.commands.report", "main", "compare the runs of a multirun: report.md, tables, tests, plots"),
    "design": ("sftlab.commands.design", "main", "show a factorial design; confirm its best combination"),
    "ask": ("sftlab.commands.ask", "ask_main", "ask a trained run: one question streamed, a file, or interactively"),
    "translate": ("sftlab.commands.ask", "translate_main", "translate with a trained run (--direction ja-en)"),
    "export": ("sftlab.commands.export", "main", "merge a run's adapter: 16-bit safetensors, GGUF, the Hub"),
}
EXAMPLES = """\
examples:
  sftlab train model=tiny_random experiment=cpu_quick      a quick CPU run; outputs/ in this directory
  sftlab train --cfg job prompt=no_reasoning               print the composed config
  sftlab train -m 'prompt=reasoning_tags,alpaca' seed=1,2  a multirun (one job per combination)
  sftlab train --config-dir my_conf experiment=mine        your own configs beside the shipped ones
  sftlab report multirun/2026-11-26/10-00-00
  sftlab ask outputs/2026-11-26/10-00-00 "Why do coastal cities have milder winters?"
  sftlab translate outputs/2026-11-26/10-00-00 --direction ja-en "次の駅で乗り換えます。"
  sftlab export outputs/2026-11-26/10-00-00 --merged merged/ --gguf model-f16.gguf

`sftlab COMMAND --help` says more. Shell completion (bash, zsh): eval "$(sftlab -sc install=bash)"
"""


def usage() -> str:
    lines = [
        "usage: sftlab COMMAND [ARGS...]",
        "",
        "LoRA/QLoRA reasoning-SFT experiments and the models they train.",
        "",
    ]
    lines.append("commands (Hydra apps: config overrides, -m, --cfg, --config-dir):")
    lines += [f"  {name:<10} {text}" for name, (_, _, text) in HYDRA_APPS.items()]
    lines.append("commands:")
    lines += [f"  {name:<10} {text}" for name, (_, _, text) in COMMANDS.items()]
    return "\n".join([*lines, "", EXAMPLES])


def entry(name: str) -> Callable:
    module, function, _ = {**HYDRA_APPS, **COMMANDS}[name]
    try:
        return getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        raise SystemExit(f"error: sftlab {name} is not part of this install ({module})") from None


def complete() -> int:
    """One bash completion query: command names after ``sftlab``, a Hydra app's own completion after its name."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()  # as Hydra's bash function splits it
    if len(words) < 2 or (len(words) == 2 and not line.endswith(" ")):
        print(" ".join([*HYDRA_APPS, *COMMANDS]))
        return 0
    if words[1] not in HYDRA_APPS:
        return 0  # the shell's own file completion (the script is installed with -o default)
    head = line.index(words[1]) + len(words[1])
    os.environ["COMP_LINE"] = f"{words[0]}{line[head:]}"
    entry(words[1])()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-sc", "--shell-completion"):
        sys.argv = [sys.argv[0], *args]  # Hydra writes the install script for this executable's name
        if any(arg.startswith("query=") for arg in args[1:]):
            return complete()
        entry("train")()
        return 0
    name, rest = args[0], args[1:]
    if name in HYDRA_APPS:
        if "--help" in rest or "-h" in rest:
            rest = [*rest, f"hydra/help={name}"]
        sys.argv = [sys.argv[0], *rest]
        entry(name)()
        return 0
    if name in COMMANDS:
        return int(entry(name)(rest) or 0)
    print(f"error: unknown command {name!r}; the commands: {', '.join([*HYDRA_APPS, *COMMANDS])}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
