"""A tiny BERT and a learnable text dataset, built on disk without any download."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import torch

WORDS = {
    "animal": ["cat", "dog", "horse", "bird", "fish", "cow"],
    "food": ["bread", "apple", "rice", "soup", "cheese", "cake"],
    "tool": ["hammer", "saw", "drill", "wrench", "knife", "axe"],
}
FILLER = ["a", "the", "of", "small", "large", "kind", "used", "for", "with", "and"]


def make_tiny_bert(folder: Path, layers: int = 2) -> Path:
    """A BERT of ``layers`` encoder layers (hidden 16) and its WordPiece tokenizer in ``folder``."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + [w for ws in WORDS.values() for w in ws]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)  # transformers 5
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def tiny_family_classifier(family, pad_token_id: int = 0):
    """A ``TextClassifier`` around a 3-layer ``AutoModelForSequenceClassification`` of ``family``
    (a transformers config class: RoBERTa, DistilBERT, ELECTRA...), 4 labels, random weights."""
    import transformers

    from layerswarm.models.text import TextClassifier

    sizes = {"vocab_size": 50, "max_position_embeddings": 40}
    if family is transformers.DistilBertConfig:
        config = family(dim=16, n_layers=3, n_heads=2, hidden_dim=32, num_labels=4, **sizes)
    else:
        config = family(
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=4,
            **({"embedding_size": 8} if family is transformers.ElectraConfig else {}),
            **sizes,
        )
    return TextClassifier(
        transformers.AutoModelForSequenceClassification.from_config(config), pad_token_id=pad_token_id
    )


def text_of(label: str, rng: random.Random) -> str:
    words = [rng.choice(WORDS[label]) for _ in range(rng.randint(1, 3))] + rng.sample(FILLER, rng.randint(1, 6))
    rng.shuffle(words)
    return " ".join(words)


def make_text_csv(path: Path, per_class: int = 30, seed: int = 0, classes=("animal", "food", "tool")) -> Path:
    """A CSV (text,label) whose label a model can learn from the words."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["text", "label"])
        for label in classes:
            for _ in range(per_class):
                out.writerow([text_of(label, rng), label])
    return path
