"""Labelled text on disk: WordNet noun definitions, CSV/TSV/JSONL tables, folders of .txt files.

Every reader returns ``(texts, labels)`` as two lists of strings in a deterministic order.
Pure Python: no torch here, so tokenisers and tools can read text without the model stack.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from layerswarm.errors import LayerswarmError

WORDNET_NOUNS = "/usr/share/wordnet/data.noun"
TEXT_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")

# WordNet 3.0's lexnames: the noun lexicographer files are numbers 03..28
_NOUN_LEXNAMES = (
    "Tops act animal artifact attribute body cognition communication event feeling food group "
    "location motive object person phenomenon plant possession process quantity relation shape "
    "state substance time"
).split()
NOUN_CATEGORIES = {3 + i: f"noun.{name}" for i, name in enumerate(_NOUN_LEXNAMES)}


def _check_classes(labels: list[str], source: object) -> None:
    classes = set(labels)
    if len(classes) < 2:
        only = f" ('{next(iter(classes))}')" if classes else ""
        raise LayerswarmError(
            f"'{source}' has only one class{only}: a classifier needs at least 2, add examples with another label"
        )


# --- WordNet ------------------------------------------------------------------------------


def _parse_wordnet(path: Path) -> list[tuple[str, str]]:
    """``(category, definition)`` for each synset line of ``data.noun``, in file order."""
    if not path.is_file():
        raise LayerswarmError(
            f"WordNet noun file '{path}' not found: install it with `apt-get install wordnet-base` "
            "(Debian/Ubuntu) or pass the path of WordNet 3.0's data.noun"
        )
    out: list[tuple[str, str]] = []
    # WordNet is ASCII; 'replace' keeps a stray byte from failing a whole 82k-line file
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("  ") or not line.strip():
                continue  # the licence header
            fields = line.split(None, 2)
            _, sep, gloss = line.partition(" | ")
            if len(fields) < 3 or not sep or not fields[1].isdigit():
                raise LayerswarmError(f"{path}:{lineno} is not a WordNet data line: pass WordNet's data.noun")
            category = NOUN_CATEGORIES.get(int(fields[1]))
            if category is None:
                raise LayerswarmError(
                    f"{path}:{lineno} has lexicographer file {fields[1]}, not a noun "
                    "(03-28): pass WordNet's data.noun, not data.verb/adj/adv"
                )
            definition = gloss.split(";", 1)[0].strip()
            if definition:  # a gloss of examples only has no definition to classify
                out.append((category, definition))
    if not out:
        raise LayerswarmError(f"WordNet file '{path}' has no synset lines: pass WordNet's data.noun")
    return out


def _choose_categories(counts: Counter[str], categories: int | Sequence[str], path: Path) -> list[str]:
    if isinstance(categories, str):  # from a command line: "10" or "animal,plant"
        text = categories.strip()
        categories = int(text) if text.isdigit() else [c for c in text.split(",") if c.strip()]
    if isinstance(categories, int):
        if categories < 2:
            raise LayerswarmError(f"WordNet categories={categories}: a classifier needs at least 2")
        if categories > len(counts):
            raise LayerswarmError(
                f"WordNet categories={categories} but '{path}' has only {len(counts)} "
                f"noun categories with definitions: pass at most {len(counts)}"
            )
        return sorted(counts, key=lambda name: (-counts[name], name))[:categories]
    lookup = {name.lower(): name for name in NOUN_CATEGORIES.values()}
    lookup.update({name.lower().removeprefix("noun."): name for name in NOUN_CATEGORIES.values()})
    chosen: list[str] = []
    for raw in categories:
        name = lookup.get(str(raw).strip().lower())
        if name is None:
            valid = ", ".join(NOUN_CATEGORIES.values())
            raise LayerswarmError(
                f"unknown WordNet category '{raw}': choose from {valid} (the 'noun.' prefix is optional)"
            )
        if not counts[name]:
            raise LayerswarmError(f"WordNet category '{name}' has no definitions in '{path}': choose another")
        if name not in chosen:
            chosen.append(name)
    return chosen


def read_wordnet(path: str | Path = WORDNET_NOUNS, categories: int | Sequence[str] = 10) -> tuple[list[str], list[str]]:
    """Noun definitions labelled by WordNet lexicographer category (``'noun.animal'``, ...).

    ``categories`` is a count N (the N categories with the most definitions, ties by name)
    or a list of names (``'noun.animal'`` or ``'animal'``). Definitions are in file order.
    """
    path = Path(path).expanduser()
    rows = _parse_wordnet(path)
    keep = set(_choose_categories(Counter(c for c, _ in rows), categories, path))
    texts = [d for c, d in rows if c in keep]
    labels = [c for c, _ in rows if c in keep]
    _check_classes(labels, path)
    return texts, labels


# --- tables -------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # Excel's 'CSV UTF-8' starts with a BOM
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise LayerswarmError(f"{path}:{line} is not valid UTF-8 text: save the file as UTF-8") from None


def _missing_column(where: str, kind: str, name: str, have: Sequence[str]) -> LayerswarmError:
    option = "--text-column" if kind == "text" else "--label-column"
    names = ", ".join(f"'{h}'" for h in have) or "none"
    return LayerswarmError(
        f"{where} has no {kind} column '{name}' (its columns: {names}): "
        f"pass {option} NAME to use another (--text-column / --label-column)"
    )


def _check_row(path: Path, line: int, text: object, label: object) -> tuple[str, str]:
    if text is not None and not isinstance(text, str):
        raise LayerswarmError(f"{path}:{line}: the text is a {type(text).__name__}, not a string: fix the row")
    text = (text or "").strip()
    label = "" if label is None else str(label).strip()
    for kind, value in (("text", text), ("label", label)):
        if not value:
            raise LayerswarmError(f"{path}:{line} has an empty {kind}: fill it in or remove the row")
    return text, label


def read_text_table(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """Rows of a ``.csv``/``.tsv`` file with a header row, or objects of a ``.jsonl`` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LayerswarmError(f"text table '{path}' does not exist: pass an existing .csv, .tsv or .jsonl file")
    content = _decode(path)
    if not content.strip():
        raise LayerswarmError(f"text table '{path}' is empty: add a header row and examples")
    texts: list[str] = []
    labels: list[str] = []
    if path.suffix.lower() == ".jsonl":
        for lineno, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise LayerswarmError(
                    f"{path}:{lineno} is not valid JSON ({err.msg}): write one JSON object per line"
                ) from None
            if not isinstance(obj, dict):
                raise LayerswarmError(
                    f"{path}:{lineno} is a JSON {type(obj).__name__}, not an object: write one JSON object per line"
                )
            for kind, name in (("text", text_column), ("label", label_column)):
                if name not in obj:
                    raise _missing_column(f"{path}:{lineno}", kind, name, list(obj))
            text, label = _check_row(path, lineno, obj[text_column], obj[label_column])
            texts.append(text)
            labels.append(label)
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
            index = {}
            for kind, name in (("text", text_column), ("label", label_column)):
                if name not in header:
                    raise _missing_column(f"'{path}'", kind, name, header)
                index[kind] = header.index(name)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                cells = [row[i] if i < len(row) else None for i in (index["text"], index["label"])]
                text, label = _check_row(path, reader.line_num, *cells)
                texts.append(text)
                labels.append(label)
        except csv.Error as err:
            raise LayerswarmError(f"{path}:{reader.line_num} cannot be parsed ({err}): fix the row") from None
    if not texts:
        raise LayerswarmError(f"text table '{path}' has no examples, only a header: add rows")
    _check_classes(labels, path)
    return texts, labels


# --- folders of .txt files ----------------------------------------------------------------


def _is_txt(path: Path) -> bool:
    return path.suffix.lower() == ".txt" and not path.name.startswith(".")


def _files(folder: Path) -> list[Path]:
    """Files directly in ``folder``, sorted: a nested train/pos/ must not become class 'train'."""
    return sorted(p for p in folder.iterdir() if p.is_file())


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_text_folder(path: str | Path) -> tuple[list[str], list[str]]:
    """One example per ``.txt`` file; the label is the class subfolder's name."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise LayerswarmError(f"text folder '{root}' does not exist: pass a folder of class subfolders of .txt files")
    per_class = {sub: [p for p in _files(sub) if _is_txt(p)] for sub in _class_folders(root)}
    if not any(per_class.values()):
        raise LayerswarmError(
            f"no class subfolders with .txt files in '{root}': give it one subfolder per "
            f"class holding one .txt file per example, e.g. '{root / 'pos' / '1.txt'}'"
        )
    texts: list[str] = []
    labels: list[str] = []
    for sub, files in per_class.items():
        if not files:
            raise LayerswarmError(f"class folder '{sub}' has no .txt files: add examples to it or remove the folder")
        for file in files:
            text = _decode(file).strip()
            if not text:
                raise LayerswarmError(f"'{file}' is empty: write the example's text in it or remove it")
            texts.append(text)
            labels.append(sub.name)
    _check_classes(labels, root)
    return texts, labels


# --- dispatch -----------------------------------------------------------------------------


def is_text_data(spec: str) -> bool:
    """Whether ``spec`` names text data: 'wordnet', a table file, or a folder of .txt classes."""
    spec = spec.strip()
    if spec.lower() == "wordnet":
        return True
    path = Path(spec).expanduser()
    if path.is_file():
        return path.suffix.lower() in TEXT_TABLE_SUFFIXES
    if not path.is_dir():
        return False
    # imported here: the image module pulls in torch and PIL, which text readers do not need
    from layerswarm.data.imagefolder import is_image_file

    found_txt = False
    for sub in _class_folders(path):
        for file in _files(sub):
            if is_image_file(file):
                return False  # an image tree, or text mixed with images: not ours
            found_txt = found_txt or _is_txt(file)
    return found_txt


def read_text_data(
    spec: str,
    text_column: str = "text",
    label_column: str = "label",
    categories: int | Sequence[str] = 10,
    wordnet_path: str | Path | None = None,
) -> tuple[list[str], list[str]]:
    """Read ``spec``: 'wordnet', a .csv/.tsv/.jsonl file, or a folder of class subfolders of .txt."""
    spec = spec.strip()
    if spec.lower() == "wordnet":
        return read_wordnet(wordnet_path or WORDNET_NOUNS, categories)
    path = Path(spec).expanduser()
    if path.is_dir():
        return read_text_folder(path)
    if path.is_file() and path.suffix.lower() in TEXT_TABLE_SUFFIXES:
        return read_text_table(path, text_column, label_column)
    kinds = "'wordnet', a .csv/.tsv/.jsonl file, or a folder of class subfolders of .txt files"
    if path.is_file():
        raise LayerswarmError(f"text data '{path}' is a {path.suffix or 'suffix-less'} file: pass {kinds}")
    raise LayerswarmError(f"text data '{spec}' does not exist: pass {kinds}")
