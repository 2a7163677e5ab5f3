"""Every `addressclip` command line the README shows parses with the real parser, as written.

The README's real-weights command (`train --config paper model.arch=… --pretrained FILE data=… out=…`)
used to stop with "unrecognized arguments" because argparse took no KEY=VALUE after an option; this
reads the commands out of README.md (code blocks and inline code), fills its placeholders, and checks
each one with `build_parser` + `parse_intermixed` (and the run config, where there is one). A second
test trains end to end with options and overrides in that same order.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from addressclip.cli import COMMAND_MODULES, build_parser, main, parse_intermixed
from addressclip.commands.common import run_config_from_args
from addressclip.config import load_config
from addressclip.model import read_checkpoint
from addressclip.model.factory import build_model
from addressclip.testing.toyworld import make_toy_manifest

README = Path(__file__).resolve().parents[1] / "README.md"
PLACEHOLDER = "PLACEHOLDER"
SYNOPSIS_WORDS = {"NAME": "zeroshot"}  # the command table's `baseline NAME`: a name from a closed list
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`((?:addressclip|torchrun) [^`]+)`")
TABLE_COMMAND = re.compile(r"^\| `((?:" + "|".join(COMMAND_MODULES) + r")\b[^`]*)` \|")


def _code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced block (also the indented ones inside list items)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line.strip())
    return blocks


def _logical_lines(lines: list[str]) -> list[str]:
    """Shell lines with `\\` continuations joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line) if not line.startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append((pending + line).strip())
        pending = ""
    return [line for line in joined if line]


def _variables(lines: list[str]) -> dict[str, str]:
    """`W=…; INIT=…` assignments in a block, to expand `$W` in the commands after them."""
    found: dict[str, str] = {}
    for line in lines:
        for part in line.split(";"):
            match = re.fullmatch(r"\s*([A-Z_]+)=(\S+)\s*", part)
            if match:
                found[match.group(1)] = match.group(2)
    return found


def _argv(command: str, variables: dict[str, str]) -> list[str]:
    """The argument list after `addressclip` (or `torchrun … -m addressclip.cli`), placeholders filled."""
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    command = command.replace("…", PLACEHOLDER).replace("\\|", "|")
    command = re.sub(r"<[^<>]+>", PLACEHOLDER, command)  # <pretrained model.pt>
    command = re.sub(r"\[([^\[\]]+)\]", r"\1", command)  # [--resume latest]: optional, given here
    words = shlex.split(command)
    start = words.index("addressclip.cli") + 1 if words[0] == "torchrun" else 1
    words = words[start:]
    # 'table|json|csv' in the README means "one of": take the first
    words = [word.split("|")[0] if "|" in word else word for word in words]
    return [SYNOPSIS_WORDS.get(word, word) for word in words]


def readme_commands() -> list[str]:
    """Each command line as the README writes it (variables expanded, continuations joined).

    Code blocks give whole command lines; inline code counts where it names what the command reads or
    writes (`--out`, `--model`, `--data`, `--bundle`, a KEY=VALUE), not a bare mention such as
    `addressclip benchmark --suite main` in a sentence or a heading.
    """
    text = README.read_text(encoding="utf-8")
    found: list[str] = []
    variables: dict[str, str] = {}  # a block may use the $W another one set
    for block in _code_blocks(text):
        variables.update(_variables(block))
        for line in _logical_lines(block):
            if line.startswith(("addressclip ", "torchrun ")):
                for name, value in variables.items():
                    line = line.replace(f"${name}", value)
                found.append(" ".join(line.split()))
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        spans = [m.group(1) for m in INLINE.finditer(line)]
        row = TABLE_COMMAND.match(line)  # the command table: `train --config cpu\|paper data=… out=…`
        if row and " \\| " not in row.group(1):  # 'A \| B' between options: two commands, not one
            spans.append(f"addressclip {row.group(1)}")
        for span in spans:
            if re.search(r"--out|--model|--data|--bundle|\w=", span):
                found.append(" ".join(span.split()))
    return list(dict.fromkeys(found))


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_this_test_expects():
    # the extractor itself must keep finding them (a README reformat should not empty this test)
    assert len(COMMANDS) >= 15
    names = {_argv(c, {})[0] for c in COMMANDS}
    assert {"render", "pretrain", "train", "benchmark", "predict", "export", "serve", "build"} <= names
    real_weights = [c for c in COMMANDS if "--config paper model.arch=" in c and "--pretrained" in c]
    assert [c.split()[0] for c in real_weights] == ["addressclip", "torchrun"]
    for command in real_weights:
        words = _argv(command, {})
        assert words.index("--pretrained") < words.index("data=runs/pitts/manifest.parquet")


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses_as_written(command: str):
    parser = build_parser()
    try:
        args = parse_intermixed(parser, _argv(command, {}))
    except SystemExit as stop:
        pytest.fail(f"README command does not parse (exit {stop.code}): {command}")
    assert getattr(args, "func", None) is not None
    if hasattr(args, "overrides") and hasattr(args, "pretrained"):
        config = run_config_from_args(args)  # the preset exists and every override is a valid key
        if args.pretrained:
            assert config.model.pretrained == args.pretrained


def test_train_with_options_between_overrides_runs_end_to_end(tmp_path: Path, capsys):
    """The README's real-weights order: --config, an override, --pretrained FILE, then data= and out=."""
    world = make_toy_manifest(tmp_path / "world", addresses=4, per_address=6)
    model = build_model(load_config("tiny").model)
    with torch.no_grad():
        model.clip.logit_scale.fill_(3.0)  # a mark the weights file carries (the default is ln 1/0.07)
    weights = tmp_path / "weights" / "open_clip_tiny.pt"
    weights.parent.mkdir()
    torch.save(model.clip.state_dict(), weights)
    out = tmp_path / "run"
    argv = [
        "train",
        "--config",
        "tiny",
        "model.arch=custom",
        "--pretrained",
        str(weights),
        f"data={world}",
        f"out={out}",
        "train.threads=1",
        "optim.batch_size=4",
        "optim.lr=1e-5",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "model:" in capsys.readouterr().out
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["pretrained"] == str(weights) and saved["data"] == str(world)
    trained = read_checkpoint(out / "model.pt")["state_dict"]
    assert float(trained["clip.logit_scale"]) == pytest.approx(3.0, abs=0.05)  # started from the file
