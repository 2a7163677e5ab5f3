"""Randomly initialised BLIP captioners saved to a folder, for tests and benchmarks (no download).

`save_random_blip(folder, "tiny")` writes a BLIP of a few thousand parameters (32 px images, one layer
per tower) with a WordPiece tokenizer over a small street vocabulary; `"base"` writes the shapes of
Salesforce/blip-image-captioning-base (ViT-B/16 at 384 px, a 12-layer BERT text decoder, a 30,524
token vocabulary) with random weights, for timing the real model's cost. Both write nonsense captions:
they exist to exercise loading, batching, generation and the bookkeeping around them.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
# fmt: off
STREET_WORDS = (
    "a", "street", "view", "of", "the", "with", "and", "on", "in", "at", "near", "under", "sky", "road",
    "roads", "house", "houses", "building", "buildings", "tree", "trees", "car", "cars", "sign", "signs",
    "shop", "shops", "window", "windows", "red", "blue", "green", "white", "grey", "yellow", "brown",
    "tall", "low", "narrow", "wide", "clear", "cloudy", "rainy", "day", "evening", "facade", "facades",
    "sidewalk", "people",
)
# fmt: on
SIZES = ("tiny", "base")


def write_vocab(path: str | Path, vocab_size: int | None = None) -> Path:
    """A WordPiece vocab file: the special tokens, the street words, then filler tokens up to vocab_size."""
    words = [*SPECIAL_TOKENS, *STREET_WORDS]
    if vocab_size is not None:
        words += [f"tok{i}" for i in range(vocab_size - len(words))]
    path = Path(path)
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def save_random_blip(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random BLIP model + processor (tokenizer included) that `from_pretrained` reads offline."""
    import torch
    import transformers
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    transformers.utils.logging.disable_progress_bar()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = write_vocab(folder / "vocab.txt", None if size == "tiny" else 30524)
    lines = vocab_file.read_text(encoding="utf-8").split("\n")
    vocab = {word: index for index, word in enumerate(w for w in lines if w)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if size == "tiny":
        image_size = 32
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "image_size": image_size, "patch_size": 16}  # fmt: skip
        text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 1, "num_attention_heads": 2, "encoder_hidden_size": 32,
                "max_position_embeddings": 64, **ids}  # fmt: skip
        config = BlipConfig(vision_config=vision, text_config=text, projection_dim=32)
    else:
        image_size = 384
        config = BlipConfig(
            vision_config={"image_size": image_size}, text_config={"vocab_size": len(tokenizer), **ids}
        )
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
