"""Text readers: WordNet noun definitions, CSV/TSV/JSONL tables, folders of .txt files, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from layerswarm.data.textfiles import (
    WORDNET_NOUNS,
    is_text_data,
    read_text_data,
    read_text_folder,
    read_text_table,
    read_wordnet,
)
from layerswarm.errors import LayerswarmError


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(LayerswarmError) as excinfo:
        fn(*args, **kwargs)
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
    return msg


# --- WordNet ------------------------------------------------------------------------------

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2   \n"


def synset(offset: int, lex: str, word: str, gloss: str) -> str:
    return f"{offset:08d} {lex} n 01 {word} 0 001 @ 00001740 n 0000 | {gloss}  \n"


@pytest.fixture
def data_noun(tmp_path: Path) -> Path:
    """3 animals, 2 plants, 2 artifacts, 1 time: ties between plant and artifact."""
    lines = [
        synset(1, "05", "dog", 'a domesticated canid; "the dog barked"'),
        synset(2, "20", "oak", "a tree of the genus Quercus"),
        synset(3, "05", "cat", 'a feline mammal; kept as a pet; "my cat"'),
        synset(4, "06", "hammer", "a hand tool with a heavy head"),
        synset(5, "05", "horse", "  a hoofed mammal  "),
        synset(6, "28", "noon", "the middle of the day"),
        synset(7, "20", "rose", "a shrub with prickly stems"),
        synset(8, "06", "saw", "a tool with a toothed blade; used for cutting"),
    ]
    path = tmp_path / "data.noun"
    path.write_text(HEADER + "".join(lines))
    return path


def test_wordnet_parses_definitions_in_file_order(data_noun: Path) -> None:
    texts, labels = read_wordnet(data_noun, categories=4)
    assert texts == [
        "a domesticated canid",
        "a tree of the genus Quercus",
        "a feline mammal",
        "a hand tool with a heavy head",
        "a hoofed mammal",
        "the middle of the day",
        "a shrub with prickly stems",
        "a tool with a toothed blade",
    ]
    assert labels == [
        "noun.animal",
        "noun.plant",
        "noun.animal",
        "noun.artifact",
        "noun.animal",
        "noun.time",
        "noun.plant",
        "noun.artifact",
    ]


def test_wordnet_categories_by_count_break_ties_by_name(data_noun: Path) -> None:
    _, labels = read_wordnet(data_noun, categories=2)
    # animal has 3; artifact and plant tie at 2, and 'noun.artifact' < 'noun.plant'
    assert Counter(labels) == {"noun.animal": 3, "noun.artifact": 2}
    _, labels3 = read_wordnet(data_noun, categories=3)
    assert set(labels3) == {"noun.animal", "noun.artifact", "noun.plant"}


def test_wordnet_categories_by_name(data_noun: Path) -> None:
    texts, labels = read_wordnet(data_noun, categories=["plant", "noun.time"])
    assert labels == ["noun.plant", "noun.time", "noun.plant"]
    assert texts == ["a tree of the genus Quercus", "the middle of the day", "a shrub with prickly stems"]
    _, same = read_wordnet(data_noun, categories="plant,time")  # as a command line gives it
    assert same == labels


def test_wordnet_errors(data_noun: Path, tmp_path: Path) -> None:
    msg = error_of(read_wordnet, data_noun, categories=["animal", "dinosaur"])
    assert "'dinosaur'" in msg and "noun.animal" in msg and "noun.time" in msg
    msg = error_of(read_wordnet, data_noun, categories=5)
    assert "categories=5" in msg and "at most 4" in msg
    assert "at least 2" in error_of(read_wordnet, data_noun, categories=1)
    assert "only one class" in error_of(read_wordnet, data_noun, categories=["animal"])
    assert "no definitions" in error_of(read_wordnet, data_noun, categories=["animal", "food"])
    msg = error_of(read_wordnet, tmp_path / "nowhere" / "data.noun")
    assert "apt-get install wordnet-base" in msg and "data.noun" in msg
    verbs = tmp_path / "data.verb"
    verbs.write_text(HEADER + synset(1, "29", "breathe", "draw air into the lungs"))
    assert "not a noun" in error_of(read_wordnet, verbs)
    junk = tmp_path / "junk.noun"
    junk.write_text(HEADER + "hello world\n")
    assert f"{junk}:3" in error_of(read_wordnet, junk)


@pytest.mark.skipif(not Path(WORDNET_NOUNS).is_file(), reason="WordNet is not installed")
def test_real_wordnet_has_ten_large_categories() -> None:
    texts, labels = read_text_data("wordnet")
    counts = Counter(labels)
    assert len(counts) == 10 and min(counts.values()) >= 1000
    assert all(t and t == t.strip() and " | " not in t for t in texts)
    assert len(texts) == len(labels)


# --- tables -------------------------------------------------------------------------------


def test_csv_tsv_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text('id,text,label\n1,"good, really",pos\n\n2,  bad  ,neg\n', encoding="utf-8-sig")
    assert read_text_table(csv_path) == (["good, really", "bad"], ["pos", "neg"])
    tsv_path = tmp_path / "a.tsv"
    tsv_path.write_text("sentence\tclass\nfine, thanks\t1\nawful\t0\n")
    assert read_text_table(tsv_path, "sentence", "class") == (["fine, thanks", "awful"], ["1", "0"])
    jsonl = tmp_path / "a.jsonl"
    rows = [{"text": "ünïcode ok", "label": 1}, {"text": "second", "label": 0, "extra": None}]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert read_text_table(jsonl) == (["ünïcode ok", "second"], ["1", "0"])
    assert read_text_data(str(jsonl)) == read_text_table(jsonl)


def test_table_missing_column_names_columns_and_options(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("sentence,label\nhi,a\nho,b\n")
    msg = error_of(read_text_table, path)
    assert "'text'" in msg and "'sentence', 'label'" in msg and "--text-column" in msg
    msg = error_of(read_text_table, path, text_column="sentence", label_column="y")
    assert "'y'" in msg and "--label-column" in msg
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"text": "b", "lbl": 2}\n')
    msg = error_of(read_text_table, jsonl)
    assert f"{jsonl}:2" in msg and "'label'" in msg and "'lbl'" in msg


def test_table_row_errors(tmp_path: Path) -> None:
    def table(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    msg = error_of(read_text_table, table("bad.csv", b"text,label\nok,a\ncaf\xe9,b\n"))
    assert "bad.csv:3" in msg and "UTF-8" in msg
    assert "bad.jsonl:2" in error_of(read_text_table, table("bad.jsonl", '{"text": "a", "label": 1}\n{oops\n'))
    msg = error_of(read_text_table, table("list.jsonl", '["a", 1]\n'))
    assert "list.jsonl:1" in msg and "not an object" in msg
    assert "e1.csv:3 has an empty text" in error_of(read_text_table, table("e1.csv", "text,label\na,x\n  ,y\n"))
    assert "e2.csv:2 has an empty label" in error_of(read_text_table, table("e2.csv", "text,label\na\nb,y\n"))
    assert "e3.jsonl:1 has an empty label" in error_of(
        read_text_table, table("e3.jsonl", '{"text": "a", "label": null}\n')
    )
    assert "is empty" in error_of(read_text_table, table("empty.tsv", ""))
    assert "only a header" in error_of(read_text_table, table("header.csv", "text,label\n"))
    msg = error_of(read_text_table, table("one.csv", "text,label\na,x\nb,x\n"))
    assert "only one class" in msg and "'x'" in msg and "at least 2" in msg


# --- folders ------------------------------------------------------------------------------


def make_folder(root: Path, classes: dict[str, dict[str, str]]) -> Path:
    for name, files in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for fname, text in files.items():
            (root / name / fname).write_text(text, encoding="utf-8")
    return root


def test_text_folder_reads_sorted(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "reviews",
        {
            "pos": {"b.txt": "great\n", "a.txt": "  lovely  ", "notes.md": "ignored"},
            "neg": {"1.txt": "dull"},
        },
    )
    (root / ".hidden").mkdir()
    assert read_text_folder(root) == (["dull", "lovely", "great"], ["neg", "pos", "pos"])
    assert read_text_data(str(root)) == read_text_folder(root)


def test_text_folder_errors(tmp_path: Path) -> None:
    msg = error_of(read_text_folder, make_folder(tmp_path / "none", {"a": {"x.md": "hi"}}))
    assert "no class subfolders with .txt files" in msg
    root = make_folder(tmp_path / "gap", {"a": {"1.txt": "hi"}, "b": {"x.md": "hi"}})
    msg = error_of(read_text_folder, root)
    assert f"'{root / 'b'}'" in msg and "no .txt files" in msg
    root = make_folder(tmp_path / "blank", {"a": {"1.txt": "hi"}, "b": {"2.txt": " \n"}})
    assert f"'{root / 'b' / '2.txt'}' is empty" in error_of(read_text_folder, root)
    root = make_folder(tmp_path / "latin", {"a": {"1.txt": "hi"}, "b": {}})
    (root / "b" / "2.txt").write_bytes(b"caf\xe9")
    msg = error_of(read_text_folder, root)
    assert str(root / "b" / "2.txt") in msg and "UTF-8" in msg
    root = make_folder(tmp_path / "single", {"a": {"1.txt": "hi", "2.txt": "ho"}})
    assert "only one class" in error_of(read_text_folder, root)


# --- dispatch -----------------------------------------------------------------------------


def test_is_text_data(tmp_path: Path) -> None:
    assert is_text_data("wordnet") and is_text_data(" WordNet ")
    table = tmp_path / "t.TSV"
    table.write_text("text\tlabel\n")
    assert is_text_data(str(table))
    assert not is_text_data(str(tmp_path / "missing.csv"))
    other = tmp_path / "t.json"
    other.write_text("{}")
    assert not is_text_data(str(other))
    assert is_text_data(str(make_folder(tmp_path / "txt", {"a": {"1.txt": "x"}, "b": {"2.txt": "y"}})))
    images = make_folder(tmp_path / "img", {"a": {"1.png": "x"}, "b": {"2.jpg": "y"}})
    assert not is_text_data(str(images))
    assert not is_text_data(str(make_folder(tmp_path / "mixed", {"a": {"1.txt": "x", "2.png": "y"}})))
    assert not is_text_data(str(tmp_path / "nowhere"))


def test_read_text_data_dispatch_errors(tmp_path: Path, data_noun: Path) -> None:
    _, labels = read_text_data("wordnet", categories=["animal", "plant"], wordnet_path=data_noun)
    assert set(labels) == {"noun.animal", "noun.plant"}
    msg = error_of(read_text_data, str(tmp_path / "nowhere.csv"))
    assert "does not exist" in msg and "'wordnet'" in msg
    other = tmp_path / "t.json"
    other.write_text("{}")
    assert ".json file" in error_of(read_text_data, str(other))
