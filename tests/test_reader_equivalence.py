"""The Polars reader gives, record by record, what the record parser alone gives.

``source/csv_stretches.py`` lets Polars read the clean stretches of a CSV and hands the rest to
the record parser; ``_CsvBackend.record_parser_only`` reads everything with the parser. Both
are compared over every fixture, over the messy inputs of ``test_messy_inputs.py`` (the same
texts, byte for byte), and over seeded random texts made of the pieces that trip CSV readers
(quotes that open, close, double or never close; CR, LF and CRLF; blank lines; ragged lines;
a BOM), each read with blocks of a few characters, so that block ends fall everywhere.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import os
import random
from pathlib import Path
from typing import Any

import pytest

from customer_import.config import SourceConfig
from customer_import.errors import InputError
from customer_import.source import csv_stretches, open_source
from customer_import.source.csv_file import _CsvBackend

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = "id,first,last,email,phone"

# The texts test_messy_inputs.py builds (p01, p04-p08, p10, p13, p21), byte for byte.
MESSY = {
    "p01-bom": codecs.BOM_UTF8 + f"{HEADER}\n1,Ada,,,\n".encode(),
    "p04-quoted-comma": f'{HEADER}\n1,Ada,"Smith, Jr.",ada@example.com,212 555 0101\n'.encode(),
    "p04-pipe": b'id|first|last|email|phone\n1|Ada|"Smith| Jr."|a@b.co|212 555 0101\n',
    "p05-crlf": f"{HEADER}\r\n1,Ada,,,\r\n2,Bob,,,\r\n3,Cy,,,\r\n".encode(),
    "p05-mixed": f"{HEADER}\r\n1,Ada,,,\n2,Bob,,,\r\n3,Cy,,,\n".encode(),
    "p05-no-final-newline": f"{HEADER}\n1,Ada,,,\n2,Bob,,,\n3,Cy,,,".encode(),
    "p05-trailing": f"{HEADER}\r\n1,Ada,,,\r\n2,Bob,,,\r\n3,Cy,,,\r\n\r\n\r\n  \n".encode(),
    "p05-blank-inside": f"\n{HEADER}\n1,Ada,,,\n\n2,Bob,,,\n \t \n3,Cy,,,\n".encode(),
    "p05-numbers": f"{HEADER}\r\n1,Ada,,,\r\n\r\n2,,,,\n\n   \n3,Cy,,\r\n4,Di,,,".encode(),
    "p06-line-breaks": (
        f"{HEADER},notes\n"
        '1,Ada,Lovelace,"ada@example.com\n","(212)\r\n555-0101","Called twice.\nPrefers email."\n'
        '2,Grace,Hopper,"grace\n@example.com",,"two\nlines"\n3,Alan,Turing,,,\n'
    ).encode(),
    "p07-quotes": (
        f'{HEADER}\n1,"ABC"S XYZ",Smith,,\n2,Jo "JJ" 5\'11",Smith,,\n3,"Open,Smith,,\n'
        '4,"Cy",Smith,,\n5,Dee,Smith,,\n'
    ).encode(),
    "p07-never-closes": f'{HEADER}\n1,Ada,,,\n2,"Bob,,,\n'.encode(),
    "p08-ragged": f"{HEADER}\r\n1,Ada,,,\r\n2,Too,Many,,,,extra\r\n3,Few,C\r\n4,Cy,,,\r\n".encode(),
    "p10-headerless": b"1,Ada,Lovelace\n2,Grace,Hopper\n",
    "p13-whitespace": f'{HEADER}\n 1 , Ada ,"  ", ada@example.com ,\t212 555 0101\n'.encode(),
    "p21-password": b'id,Password,first\n1,"p,w""x",Ada\n2,"broken,Bob\n3,ok,Cy\n',
    "utf16-tsv": "id\tfirst\tlast\r\n1\tZoë\tO’Brien\r\n2\tJosé\tPeña\r\n".encode("utf-16"),
    "cp1252": f"{HEADER}\n1,Zoë,Müller,,\n2,José,,,\n".encode("cp1252"),
    # What the skeleton of a block cannot show, and the bytes it keeps or must look past.
    "two-boms": codecs.BOM_UTF8 * 2 + f"{HEADER}\n1,Ada,,,\n".encode(),
    "p10-headerless-two-boms": codecs.BOM_UTF8 * 2 + b"1,Ada,Lovelace\n2,Grace,Hopper\n",
    "feff-line-start": f"{HEADER}\n1,Ada,,,\n\ufeff2,Bob,,,\n3,Cy,,,\n".encode(),
    "feff-inside": f"{HEADER}\n1,A\ufeffda,,,\n2,Bob,\ufeff,,\n".encode(),
    "fullwidth": f'{HEADER}\n1,Ａｄａ｜,,,\n2,"ｂ,ｏｂ",,,\n'.encode(),
    "nul": f'{HEADER}\n1,Ada,,,\n2,B\x00b,,,\n3,"C\x00y",,,\n4,Di,,,\n'.encode(),
    "bare-cr": f"{HEADER}\r\n1,Ada,,,\r\n2,B\rob,,,\r\n3,Cy,,,\r\n".encode(),
    "cr-before-text": f"{HEADER}\n1,Ada,,,\rx\n2,Bob,,,\n".encode(),
    "quoted-delimiters": f'{HEADER}\n1,",,,,",,,\n2,"a""b",",",,"\n"\n3,Cy,,,\n'.encode(),
    "one-more-one-fewer": f"{HEADER}\n1,Ada,,,,\n2,Bob,,\n3,Cy,,,\n".encode(),
}

PIECES = (
    "a", "Bob", "é", "", " ", '"q"', '"a,b"', '"x""y"', '"multi\nline"', '"cr\r\nlf"', '"open',
    'x"y', '"a"b', ",", '""', "\ufeff", "\t",
)  # fmt: skip
ENDS = ("\n", "\n", "\n", "\r\n", "\r")


def read(path: Path, parser_only: bool, **settings: Any) -> list[tuple[object, ...]]:
    """Every batch as (its size, its rows, its parse failures), read one way or the other."""
    _CsvBackend.record_parser_only = parser_only
    try:
        with open_source(SourceConfig(**settings), path) as source:
            return [
                (b.records, b.frame.rows(), [(f.row, f.raw, f.reason) for f in b.failures])
                for b in source.batches(first=2)
            ]
    finally:
        _CsvBackend.record_parser_only = False


def assert_same(path: Path, **settings: Any) -> None:
    try:
        expected = read(path, True, **settings)
    except InputError as exc:  # the header is read one way: both fail alike
        with pytest.raises(InputError, match=str(exc)[:40].replace("(", ".")):
            read(path, False, **settings)
        return
    assert read(path, False, **settings) == expected


def random_text(rng: random.Random) -> str:
    width = rng.randint(2, 4)
    lines = [",".join(f"h{k}" for k in range(width))]
    for _ in range(rng.randint(0, 30)):
        fields = width + rng.choice((0, 0, 0, 0, -1, 1))
        if rng.random() < 0.3:
            line = ",".join(rng.choice(PIECES) for _ in range(max(fields, 1)))
        else:
            line = ",".join(rng.choice(("a", "b", "", "ü")) for _ in range(max(fields, 1)))
        lines.append(line if rng.random() > 0.05 else rng.choice(("", "  ", "\t")))
    ends = [rng.choice(ENDS) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends, strict=True))
    return text if rng.random() > 0.2 else text.rstrip("\r\n")


@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.iterdir() if ".parquet" not in p.name)
)
def test_every_fixture_reads_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for block in (64, 1 << 22):
        monkeypatch.setattr(csv_stretches, "BLOCK_BYTES", block)
        has_header = name != "headerless.csv"
        assert_same(FIXTURES / name, batch_size=3, has_header=has_header)


@pytest.mark.parametrize("name", sorted(MESSY))
@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_every_messy_input_reads_the_same(
    name: str, block: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_stretches, "BLOCK_BYTES", block)
    data = MESSY[name]
    path = tmp_path / ("export.txt" if "tsv" in name else "export.csv")
    path.write_bytes(data)
    settings: dict[str, Any] = {"encoding": "auto", "has_header": "headerless" not in name}
    if "password" in name:
        settings["drop_columns"] = ["Password"]
    assert_same(path, batch_size=2, **settings)


def test_a_gzipped_export_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "export.csv.gz"
    path.write_bytes(gzip.compress(MESSY["p07-quotes"] + MESSY["p08-ragged"]))
    assert_same(path, batch_size=4)


@pytest.mark.parametrize("parser_only", [True, False])
def test_bytes_no_longer_utf8_fail_as_decoding_them_would(
    parser_only: bool, tmp_path: Path
) -> None:
    """The Polars reader reads a UTF-8 file's own bytes: ones that changed since the encoding
    was checked (the same size and time) still raise, as decoding them does."""
    path = tmp_path / "export.csv"
    path.write_bytes(f"{HEADER}\n1,Ada,,,\n2,Bob,,,\n".encode())
    _CsvBackend.record_parser_only = parser_only
    try:
        with open_source(SourceConfig(encoding="utf-8"), path) as source:
            stat = path.stat()
            path.write_bytes(path.read_bytes().replace(b"Bob", b"B\xffb"))
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            with pytest.raises(InputError, match=r"cannot read the file.*can't decode byte 0xff"):
                list(source.batches())
    finally:
        _CsvBackend.record_parser_only = False


def mostly_plain_text(rng: random.Random, delimiter: str) -> str:
    """Lines most of which are plain, so that blocks are judged by their skeleton."""
    width = rng.randint(2, 8)
    lines = [delimiter.join(f"h{k}" for k in range(width))]
    ending = rng.choice(("\n", "\r\n"))
    for _ in range(rng.randint(0, 60)):
        fields = [rng.choice(("a", "", "ü", "ｂ", "x y")) for _ in range(width)]
        if rng.random() < 0.25:
            fields[rng.randrange(width)] = rng.choice(TRICKY)
        if rng.random() < 0.05:
            fields = fields[:-1] if rng.random() < 0.5 else [*fields, "z"]
        line = delimiter.join(fields)
        lines.append(line + (ending if rng.random() > 0.1 else rng.choice(ENDS)))
    text = "".join(lines[:1]) + ending + "".join(lines[1:])
    return text if rng.random() > 0.1 else text.rstrip("\r\n")


TRICKY = (*PIECES, '"a|b"', '"a;b"', '"a\tb"', "\x00", '"\x00"', "\r", "a\rb", "\ufeffa", "ａ｜")


@pytest.mark.parametrize("seed", range(40))
def test_the_skeleton_judges_lines_as_the_expression_does(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a block's skeleton says which lines are clean, it says what the expression does."""
    rng = random.Random(seed)
    monkeypatch.setattr(csv_stretches, "_PER_QUOTE", 0)  # however many quotes
    limit = csv.field_size_limit()
    try:
        for _ in range(10):
            delimiter = rng.choice((",", ";", "\t", "|"))
            text = mostly_plain_text(rng, delimiter)
            width = text.split("\n", 1)[0].count(delimiter) + 1
            csv.field_size_limit(rng.choice((limit, 40, 7)))
            checks = csv_stretches._Checks.of(delimiter, width)
            assert checks is not None
            data = text.encode()
            block = csv_stretches._Block(data, checks)
            assert (block.size, block.bad) == block._regex_checked(checks)
            assert block.offset(block.size) == len(data)
    finally:
        csv.field_size_limit(limit)


@pytest.mark.parametrize("seed", range(20))
def test_mostly_plain_texts_read_the_same(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    for k in range(6):
        delimiter = rng.choice((",", ";", "\t", "|"))
        path = tmp_path / f"p{k}.csv"
        path.write_bytes(
            rng.choice((b"", codecs.BOM_UTF8)) + mostly_plain_text(rng, delimiter).encode()
        )
        monkeypatch.setattr(csv_stretches, "BLOCK_BYTES", rng.choice((1, 5, 64, 1 << 22)))
        monkeypatch.setattr(csv_stretches, "_PER_QUOTE", rng.choice((0, 64)))
        assert_same(path, batch_size=rng.choice((1, 3, 10_000)), delimiter=delimiter)


@pytest.mark.parametrize("seed", range(40))
def test_random_texts_read_the_same(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    for k in range(8):
        path = tmp_path / f"r{k}.csv"
        path.write_text(random_text(rng), encoding="utf-8", newline="")
        monkeypatch.setattr(csv_stretches, "BLOCK_BYTES", rng.choice((1, 5, 13, 1 << 22)))
        assert_same(path, batch_size=rng.choice((1, 3, 10_000)), delimiter=",")


@pytest.mark.parametrize("columns", [None, ["id"]])
def test_bytes_no_longer_utf8_in_a_clean_block_raise_the_decoding_error(
    columns: list[str] | None,
) -> None:
    """A file changed after its encoding was checked: Polars refuses the block, whatever the
    columns read, and the record parser's reading raises what decoding the bytes would."""
    text = b"id,name\n" + b"".join(b"C-%d,Ann\n" % i for i in range(50)) + b"C-50,Bj\xf6rn\n"
    checks = csv_stretches._Checks.of(",", 2)
    assert checks is not None and checks.from_skeleton(text) == (52, [])  # judged clean
    chunks = iter([text])
    stretches = csv_stretches.Stretches(lambda _: next(chunks, b""), ",", 2, True, "header")
    select = [0] if columns else [0, 1]
    with stretches, pytest.raises(UnicodeDecodeError):
        list(stretches.parts(select, columns or ["id", "name"], 10))
