"""source/: real files in tmp_path; tests are named after the property of real exports covered."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import random
import struct
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from customer_import.config import SourceConfig
from customer_import.contracts import ROW, Batch, ParseFailure
from customer_import.errors import ConfigError, InputError
from customer_import.source import Source, file_digest, open_source, parquet_file, unique_names

# --- helpers -------------------------------------------------------------------------------


def write(tmp_path: Path, data: bytes | str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(path: Path, columns: list[str] | None = None, **config: Any) -> list[Batch]:
    with open_source(SourceConfig(**config), path) as source:
        return list(source.batches(columns))


def rows_of(batches: list[Batch]) -> list[tuple[Any, ...]]:
    return [row for batch in batches for row in batch.frame.rows()]


def failures_of(batches: list[Batch]) -> list[ParseFailure]:
    return [failure for batch in batches for failure in batch.failures]


def assert_conserved(batches: list[Batch], records: int) -> None:
    """Every record number 1..records appears exactly once, as a row or as a failure."""
    numbers = [n for batch in batches for n in batch.frame[ROW].to_list()]
    numbers += [failure.row for failure in failures_of(batches)]
    assert sorted(numbers) == list(range(1, records + 1))


def read_rows(path: Path, **config: Any) -> list[tuple[Any, ...]]:
    return rows_of(read(path, **config))


# --- encodings -----------------------------------------------------------------------------

TEXT = "id,name\r\n1,Zoë Müller\r\n"


@pytest.mark.parametrize(
    ("data", "encoding", "expected_codec"),
    [
        pytest.param(b"\xef\xbb\xbf" + TEXT.encode(), "utf-8", "utf-8-sig", id="utf8-bom-explicit"),
        pytest.param(TEXT.encode("utf-16"), "utf-16", "utf-16", id="utf16-bom-explicit"),
        pytest.param(
            b"\xff\xfe" + TEXT.encode("utf-16-le"), "utf-16-le", "utf-16-le", id="utf16le"
        ),
        pytest.param(TEXT.encode("cp1252"), "cp1252", "cp1252", id="cp1252-explicit"),
        pytest.param(TEXT.encode("cp1252"), "windows-1252", "cp1252", id="cp1252-alias"),
        pytest.param(TEXT.encode(), "auto", "utf-8", id="auto-utf8"),
        pytest.param(b"\xef\xbb\xbf" + TEXT.encode(), "auto", "utf-8-sig", id="auto-utf8-bom"),
        pytest.param(TEXT.encode("utf-16"), "auto", "utf-16", id="auto-utf16-le-bom"),
        pytest.param(b"\xfe\xff" + TEXT.encode("utf-16-be"), "auto", "utf-16", id="auto-utf16-be"),
        pytest.param(TEXT.encode("cp1252"), "auto", "cp1252", id="auto-cp1252-fallback"),
        # A BOM decides over the configured codec: no cp1252 or UTF-8 text starts with one.
        pytest.param(TEXT.encode("utf-16"), "utf-8", "utf-16", id="utf16-bom-under-utf8"),
        pytest.param(b"\xef\xbb\xbf" + TEXT.encode(), "cp1252", "utf-8-sig", id="bom-over-cp1252"),
        pytest.param(TEXT.encode("utf-16"), "latin-1", "utf-16", id="utf16-bom-over-latin1"),
    ],
)
def test_encoding_is_decoded_bom_stripped_and_reported(
    tmp_path: Path, data: bytes, encoding: str, expected_codec: str
) -> None:
    path = write(tmp_path, data)
    with open_source(SourceConfig(encoding=encoding), path) as source:
        assert source.header == ["id", "name"]  # no BOM in the first column's name
        assert source.encoding == expected_codec
        assert rows_of(list(source.batches())) == [(1, "1", "Zoë Müller")]


def test_gzip_csv_is_streamed_and_encoding_detected(tmp_path: Path) -> None:
    path = write(tmp_path, gzip.compress(TEXT.encode("cp1252")), "export.csv.gz")
    with open_source(SourceConfig(encoding="auto"), path) as source:
        assert source.encoding == "cp1252"
        assert source.size == path.stat().st_size
        assert rows_of(list(source.batches())) == [(1, "1", "Zoë Müller")]


@pytest.mark.parametrize(
    ("data", "encoding", "where"),
    [
        pytest.param(b"id,name\n1,ok\n2,\xff\n", "utf-8", "offset 15 (line 3)", id="utf8"),
        pytest.param(b"id,name\n1,\x81\n", "cp1252", "offset 10 (line 2)", id="cp1252-undefined"),
        pytest.param(b"id,name\n1,ab\xc3", "utf-8", "offset 12 (line 2)", id="truncated-at-eof"),
    ],
)
def test_undecodable_bytes_name_encoding_and_position(
    tmp_path: Path, data: bytes, encoding: str, where: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        open_source(SourceConfig(encoding=encoding), path)
    message = str(caught.value)
    assert encoding in message
    assert where in message
    assert '"auto"' in message and "cp1252" in message


def test_undecodable_byte_position_is_found_beyond_the_first_chunk(tmp_path: Path) -> None:
    body = "".join(f"{i},name{i}\n" for i in range(1, 200_001))  # > 1 MiB read chunk
    path = write(tmp_path, ("id,name\n" + body).encode() + b"9,\xe9\n")
    with pytest.raises(InputError, match=r"offset \d+ \(line 200002\)"):
        open_source(SourceConfig(encoding="utf-8"), path)


def test_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown encoding"):
        open_source(SourceConfig(encoding="klingon"), write(tmp_path, TEXT))


# --- delimiters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "configured", "expected"),
    [
        pytest.param("a,b,c\n1,2,3\n", "x.csv", "auto", ",", id="comma"),
        pytest.param("a;b;c\n1;2;3\n", "x.csv", "auto", ";", id="semicolon"),
        pytest.param("a\tb\tc\n1\t2\t3\n", "x.txt", "auto", "\t", id="tab"),
        pytest.param("a|b|c\n1|2|3\n", "x.csv", "auto", "|", id="pipe"),
        pytest.param("a\tb\tc\n1\t2\t3\n", "x.tsv", "auto", "\t", id="tsv-defaults-to-tab"),
        pytest.param('"a;b;c;d",e,f\n1,2,3\n', "x.csv", "auto", ",", id="quoted-not-counted"),
        pytest.param("a,b;c\n1,2;3\n", "x.csv", "auto", ",", id="tie-goes-to-comma"),
        pytest.param("a;b|c\n1;2|3\n", "x.csv", "auto", ";", id="tie-without-comma-in-order"),
        pytest.param("a;b;c,d\n1;2;3,4\n", "x.csv", ",", ",", id="explicit-wins"),
    ],
)
def test_delimiter_detected_from_header_line(
    tmp_path: Path, text: str, name: str, configured: str, expected: str
) -> None:
    path = write(tmp_path, text, name)
    with open_source(SourceConfig(delimiter=configured), path) as source:
        assert source.delimiter == expected
        rows = rows_of(list(source.batches()))
    assert len(rows) == 1
    assert len(rows[0]) == len(source.columns) + 1


# --- lines, blank lines, quoting -----------------------------------------------------------

EXPECTED_TWO_ROWS = [(1, "1", "a"), (2, "2", "b")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("id,n\r\n1,a\r\n2,b\r\n", id="crlf"),
        pytest.param("id,n\n1,a\n2,b\n", id="lf"),
        pytest.param("id,n\r\n1,a\n2,b\r\n", id="mixed"),
        pytest.param("id,n\r1,a\r2,b\r", id="cr-only"),
        pytest.param("id,n\n1,a\n2,b", id="no-final-newline"),
        pytest.param("id,n\n1,a\n2,b\n\n\r\n  \n", id="trailing-blank-lines"),
        pytest.param("\n\nid,n\n\n1,a\n2,b\n", id="blank-lines-before-header"),
    ],
)
def test_line_endings_give_the_same_records(tmp_path: Path, text: str) -> None:
    assert read_rows(write(tmp_path, text)) == EXPECTED_TWO_ROWS


def test_blank_lines_are_not_records_and_get_no_number(tmp_path: Path) -> None:
    path = write(tmp_path, "id,n\n1,a\n\n   \n2,b\r\n\t\r\n\n3,c\n")
    assert read_rows(path) == [(1, "1", "a"), (2, "2", "b"), (3, "3", "c")]


def test_blank_line_in_single_column_file_is_skipped_but_quoted_empty_kept(tmp_path: Path) -> None:
    path = write(tmp_path, 'email\na@x.com\n   \n""\nb@x.com\n')
    assert read_rows(path) == [(1, "a@x.com"), (2, ""), (3, "b@x.com")]


def test_quoted_delimiter_newline_and_doubled_quotes_are_one_record(tmp_path: Path) -> None:
    text = 'id,name,note\r\n1,"Doe, Jane","line 1\r\nline 2"\r\n2,"say ""hi""",x\r\n3,b,c\r\n'
    batches = read(write(tmp_path, text))
    assert rows_of(batches) == [
        (1, "1", "Doe, Jane", "line 1\r\nline 2"),
        (2, "2", 'say "hi"', "x"),
        (3, "3", "b", "c"),
    ]
    assert_conserved(batches, 3)


def test_values_are_text_exactly_as_read(tmp_path: Path) -> None:
    path = write(tmp_path, "id,phone,amount,flag,name\n000123,+0044,1.50,TRUE,  Jo  \n,,,,\n")
    batches = read(path)
    assert batches[0].frame.schema == pl.Schema(
        {ROW: pl.Int64, "id": pl.String, "phone": pl.String, "amount": pl.String}
        | {"flag": pl.String, "name": pl.String}
    )
    assert rows_of(batches) == [
        (1, "000123", "+0044", "1.50", "TRUE", "  Jo  "),
        (2, "", "", "", "", ""),
    ]


def test_quote_inside_unquoted_field_is_kept(tmp_path: Path) -> None:
    assert read_rows(write(tmp_path, "id,height\n1,5'11\"\n")) == [(1, "1", "5'11\"")]


# --- broken records ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param("2,b,c,extra", "line has 4 fields, the header has 3", id="too-many"),
        pytest.param("2,b", "line has 2 fields, the header has 3", id="too-few"),
        pytest.param("just-one", "line has 1 fields, the header has 3", id="one-field"),
        pytest.param('2,"ABC"S XYZ",c', "stray quote", id="stray-quote-right-count"),
        pytest.param('2,"ABC"S, XYZ",c', "stray quote", id="stray-quote-extra-field"),
    ],
)
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_broken_line_is_a_failure_with_raw_text_and_reading_continues(
    tmp_path: Path, line: str, reason: str, eol: str
) -> None:
    text = eol.join(["id,name,city", "1,a,x", line, "", "3,c,z", "4,d,w"]) + eol
    batches = read(write(tmp_path, text))
    [failure] = failures_of(batches)
    assert (failure.row, failure.raw) == (2, line)
    assert reason in failure.reason
    assert rows_of(batches) == [(1, "1", "a", "x"), (3, "3", "c", "z"), (4, "4", "d", "w")]
    assert_conserved(batches, 4)


@pytest.mark.parametrize(
    ("lines", "broken", "good"),
    [
        pytest.param(
            ["1,a,x", '2,"never closed,y', "3,c,z", "4,d,w"],
            {2: '2,"never closed,y'},
            {1, 3, 4},
            id="quote-never-closes",
        ),
        pytest.param(
            ["1,a,x", '2,"opens here,y', '3,c,"z"', "4,d,w"],
            {2: '2,"opens here,y'},
            {1, 3, 4},
            id="quote-closes-on-later-line-then-stray",
        ),
        pytest.param(
            ["1,a,x", '2,"opens here', '3,c",z,w', "4,d,w"],
            {2: '2,"opens here', 3: '3,c",z,w'},
            {1, 4},
            id="quote-closes-later-with-wrong-count",
        ),
        pytest.param(
            ["1,a,x", "2,b,y", '3,"last line'],
            {3: '3,"last line'},
            {1, 2},
            id="quote-open-on-last-line",
        ),
    ],
)
def test_unbalanced_quote_rejects_its_first_line_only(
    tmp_path: Path, lines: list[str], broken: dict[int, str], good: set[int]
) -> None:
    batches = read(write(tmp_path, "\n".join(["id,name,city", *lines]) + "\n"))
    failures = failures_of(batches)
    assert {f.row: f.raw for f in failures} == broken
    assert all("quote" in f.reason or "fields" in f.reason for f in failures)
    assert {row[0] for row in rows_of(batches)} == good
    assert_conserved(batches, len(lines))


@pytest.mark.parametrize("column", ["Password", " password "])
def test_broken_line_text_is_withheld_when_the_file_has_a_dropped_column(
    tmp_path: Path, column: str
) -> None:
    text = f"id,name,{column}\n1,a,pw-1\n2,b,pw-2,extra\n"
    [failure] = failures_of(read(write(tmp_path, text)))
    assert (failure.row, failure.raw) == (2, "")
    assert failure.reason == (
        "line has 4 fields, the header has 3 "
        "(the line's text is withheld: the file has a column in drop_columns)"
    )


def test_broken_line_text_is_kept_when_no_column_is_dropped(tmp_path: Path) -> None:
    text = "id,name,Password\n1,a,pw-1\n2,b,pw-2,extra\n"
    [failure] = failures_of(read(write(tmp_path, text), drop_columns=[]))
    assert failure.raw == "2,b,pw-2,extra"


def test_unbalanced_quote_does_not_swallow_a_large_file(tmp_path: Path) -> None:
    # The open quote runs until the csv field limit, far past one 64K-character line chunk.
    body = [f'{i},name {i},"city {i}"' for i in range(3, 6001)]
    text = "\n".join(["id,name,city", "1,a,x", '2,"oops,y', *body]) + "\n"
    batches = read(write(tmp_path, text), batch_size=1000)
    assert [(f.row, f.raw) for f in failures_of(batches)] == [(2, '2,"oops,y')]
    assert rows_of(batches)[-1] == (6000, "6000", "name 6000", "city 6000")
    assert_conserved(batches, 6000)


def test_multiline_quoted_field_with_right_count_is_one_record(tmp_path: Path) -> None:
    text = 'id,note,city\n1,"first\n\nthird, with comma",x\n2,b,y\n'
    batches = read(write(tmp_path, text))
    assert rows_of(batches) == [(1, "1", "first\n\nthird, with comma", "x"), (2, "2", "b", "y")]
    assert failures_of(batches) == []


def test_batch_boundaries_keep_numbers_and_failures_in_their_range(tmp_path: Path) -> None:
    text = "id,n\n1,a\n2,b\n\n3,broken,extra\n4,d\n5,e\n"
    batches = read(write(tmp_path, text), batch_size=2)
    assert [b.frame[ROW].to_list() for b in batches] == [[1, 2], [4], [5]]
    assert [[f.row for f in b.failures] for b in batches] == [[], [3], []]
    assert_conserved(batches, 5)


def test_a_smaller_first_batch_then_batch_size(tmp_path: Path) -> None:
    text = "id,n\n1,a\n2,broken,extra\n3,c\n4,d\n5,e\n6,f\n"
    with open_source(SourceConfig(batch_size=3), write(tmp_path, text)) as source:
        batches = list(source.batches(first=2))
    assert [b.frame[ROW].to_list() for b in batches] == [[1], [3, 4, 5], [6]]
    assert [[f.row for f in b.failures] for b in batches] == [[2], [], []]
    assert_conserved(batches, 6)


def test_a_first_batch_cap_above_batch_size_leaves_batch_size_in_force(tmp_path: Path) -> None:
    text = "id,n\n1,a\n2,b\n3,c\n4,d\n5,e\n"
    with open_source(SourceConfig(batch_size=2), write(tmp_path, text)) as source:
        batches = list(source.batches(first=1_000))
    assert [b.frame[ROW].to_list() for b in batches] == [[1, 2], [3, 4], [5]]


def test_batch_of_only_broken_records_has_an_empty_typed_frame(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id,n\nbad\nworse\n"), batch_size=5)
    assert len(batches) == 1
    assert batches[0].frame.height == 0
    assert batches[0].frame.schema == pl.Schema({ROW: pl.Int64, "id": pl.String, "n": pl.String})
    assert [f.row for f in batches[0].failures] == [1, 2]


def test_header_only_file_yields_no_batches(tmp_path: Path) -> None:
    assert read(write(tmp_path, "id,name\n")) == []


# --- header --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(["a", "b"], ["a", "b"], id="unique-unchanged"),
        pytest.param(
            ["Phone Number", "Phone Number", "Phone Number"],
            ["Phone Number", "Phone Number_2", "Phone Number_3"],
            id="repeats-numbered",
        ),
        pytest.param(["A", "A", "A_2"], ["A", "A_3", "A_2"], id="taken-suffix-skipped"),
        pytest.param(["A_2", "A", "A"], ["A_2", "A", "A_3"], id="taken-suffix-earlier"),
        pytest.param(["id", "", " "], ["id", "column_2", "column_3"], id="empty-cells"),
        pytest.param(["", "column_1"], ["column_1", "column_1_2"], id="generated-collides"),
    ],
)
def test_unique_names(header: list[str], expected: list[str]) -> None:
    assert unique_names(header) == expected


def test_repeated_header_names_kept_in_header_and_unique_in_columns(tmp_path: Path) -> None:
    text = "Phone Number,Email,Phone Number\n111,a@x.com,222\n"
    with open_source(SourceConfig(), write(tmp_path, text)) as source:
        assert source.header == ["Phone Number", "Email", "Phone Number"]
        assert source.columns == ["Phone Number", "Email", "Phone Number_2"]
        batch = next(source.batches(["Phone Number_2"]))
    assert batch.frame.rows() == [(1, "222")]


def test_headerless_file_numbers_its_first_line_as_record_1(tmp_path: Path) -> None:
    path = write(tmp_path, "001,Ann,a@x.com\n002,Bob\n003,Cy,c@x.com\n")
    with open_source(SourceConfig(has_header=False), path) as source:
        assert source.header == source.columns == ["column_1", "column_2", "column_3"]
        batches = list(source.batches())
    assert rows_of(batches) == [(1, "001", "Ann", "a@x.com"), (3, "003", "Cy", "c@x.com")]
    assert failures_of(batches)[0].reason == "line has 2 fields, the first record has 3"
    assert_conserved(batches, 3)


# --- column subsets, re-reading, closing ---------------------------------------------------


def test_batches_reads_a_subset_in_the_requested_order(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name,email\n1,a,a@x\n2,b,b@x\n")
    batches = read(path, ["email", "id"])
    assert batches[0].frame.columns == [ROW, "email", "id"]
    assert rows_of(batches) == [(1, "a@x", "1"), (2, "b@x", "2")]


def test_unknown_column_in_subset_is_a_config_error(tmp_path: Path) -> None:
    with (
        open_source(SourceConfig(), write(tmp_path, "id,name\n1,a\n")) as source,
        pytest.raises(ConfigError, match="no column 'mail'"),
    ):
        source.batches(["mail"])


def test_batches_can_be_called_again_and_reread_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\n1,a\n2,b,c\n3,c\n")
    with open_source(SourceConfig(batch_size=2), path) as source:
        first = [(b.frame.rows(), b.failures) for b in source.batches()]
        second = [(b.frame.rows(), b.failures) for b in source.batches()]
    assert first == second
    assert len(first) == 2


def test_close_stops_an_unfinished_reader(tmp_path: Path) -> None:
    source: Source = open_source(SourceConfig(batch_size=1), write(tmp_path, "id\n1\n2\n3\n"))
    reader = source.batches()
    next(reader)
    source.close()
    assert list(reader) == []


# --- Parquet -------------------------------------------------------------------------------


def write_parquet(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "export.parquet"
    pq.write_table(table, path)
    return path


def test_parquet_columns_become_text_without_float_or_type_artefacts(tmp_path: Path) -> None:
    utc = dt.UTC
    table = pa.table(
        {
            "id": pa.array([123, None, 7], pa.int64()),
            "legacy_id": pa.array([123.0, None, float("nan")], pa.float64()),
            "score": pa.array([2.5, 1e20, 0.1], pa.float32()),
            "phone": pa.array([7022550000000.0, -0.0, float("inf")]),
            "active": pa.array([True, False, None]),
            "born": pa.array([dt.date(2024, 3, 20), None, dt.date(1999, 1, 2)]),
            "seen": pa.array(
                [dt.datetime(2024, 3, 20, 10), dt.datetime(2024, 3, 20, 10, 0, 0, 500000), None],
                pa.timestamp("us"),
            ),
            "seen_utc": pa.array(
                [dt.datetime(2024, 3, 20, 10, tzinfo=utc), None, None], pa.timestamp("ms", "UTC")
            ),
            "name": pa.array(["000123", "", None]),
        }
    )
    path = write_parquet(tmp_path, table)
    with open_source(SourceConfig(), path) as source:
        assert (source.encoding, source.delimiter) == ("parquet", None)
        batches = list(source.batches())
    assert batches[0].frame.schema == pl.Schema(
        {ROW: pl.Int64} | dict.fromkeys(table.column_names, pl.String)
    )
    assert batches[0].frame.to_dict(as_series=False) == {
        ROW: [1, 2, 3],
        "id": ["123", "", "7"],
        "legacy_id": ["123", "", ""],
        "score": ["2.5", "100000000000000000000", "0.1"],
        "phone": ["7022550000000", "0", "inf"],
        "active": ["true", "false", ""],
        "born": ["2024-03-20", "", "1999-01-02"],
        "seen": ["2024-03-20T10:00:00", "2024-03-20T10:00:00.500000", ""],
        "seen_utc": ["2024-03-20T10:00:00Z", "", ""],
        "name": ["000123", "", ""],
    }
    assert failures_of(batches) == []


def test_parquet_tz_aware_timestamp_is_written_in_utc(tmp_path: Path) -> None:
    paris = pa.array([dt.datetime(2024, 3, 20, 9)], pa.timestamp("s")).cast(
        pa.timestamp("s", "Europe/Paris")
    )
    path = write_parquet(tmp_path, pa.table({"t": paris}))
    assert read_rows(path) == [(1, "2024-03-20T09:00:00Z")]


def test_parquet_is_read_in_numbered_batches_and_subsets(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(10, 15)), "name": list("abcde")})
    batches = read(write_parquet(tmp_path, table), ["name"], batch_size=2)
    assert [b.frame.height for b in batches] == [2, 2, 1]
    assert rows_of(batches) == [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    assert_conserved(batches, 5)


def test_parquet_first_batch_is_cut_from_pyarrows_first(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(10, 17))})
    with open_source(SourceConfig(batch_size=3), write_parquet(tmp_path, table)) as source:
        batches = list(source.batches(first=2))
    assert [b.frame[ROW].to_list() for b in batches] == [[1, 2], [3], [4, 5, 6], [7]]
    assert rows_of(batches)[2] == (3, "12")
    assert_conserved(batches, 7)


def test_not_a_parquet_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Parquet"):
        open_source(SourceConfig(), write(tmp_path, "id,name\n", "export.parquet"))


def test_parquet_column_types_become_the_text_pyarrow_gave(tmp_path: Path) -> None:
    """Each Arrow type as pyarrow's reader turned it into text, before Polars read Parquet."""
    utc, nothing = dt.UTC, None
    table = pa.table(
        {
            "int8": pa.array([1, -2, nothing], pa.int8()),
            "uint64": pa.array([2**64 - 1, 0, nothing], pa.uint64()),
            "float64": pa.array([1e-7, 123456789012345.6, 0.000015], pa.float64()),
            "float64_whole": pa.array([1e22, 1.7976931348623157e308, -0.0], pa.float64()),
            "float32": pa.array([1 / 3, 16777217.0, 3.4e38], pa.float32()),
            "float16": pa.array([0.1, nothing, 2.0], pa.float64()).cast(pa.float16()),
            "timestamp_ns": pa.array(
                [1710928800000000000, 1710928800000000001, nothing], pa.timestamp("ns")
            ),
            "timestamp_tz": pa.array(
                [
                    dt.datetime(2024, 3, 20, 9, tzinfo=utc),
                    dt.datetime(2024, 3, 20, 9, 0, 0, 123000, tzinfo=utc),
                    nothing,
                ],
                pa.timestamp("ms", "America/New_York"),
            ),
            "timestamp_offset": pa.array(
                [dt.datetime(2024, 3, 20, 9, tzinfo=utc)] * 3, pa.timestamp("us", "+01:00")
            ),
            "year_10000": pa.array([253402387200, nothing, -62167219200], pa.timestamp("s")),
            "decimal": pa.array(
                [Decimal("1.50"), nothing, Decimal("-123.45")], pa.decimal128(10, 2)
            ),
            "large_string": pa.array(["a", "é", nothing], pa.large_string()),
            "binary": pa.array([b"abc", b"\xff\xfe", nothing]),
            "fixed_binary": pa.array([b"ab", "é".encode(), nothing], pa.binary(2)),
            "dictionary": pa.array(["x", "y", nothing]).dictionary_encode(),
            "list": pa.array([[1, 2], [], nothing], pa.list_(pa.int64())),
            "list_float32": pa.array([[0.1], [float("nan")], nothing], pa.list_(pa.float32())),
            "struct": pa.array(
                [
                    {"d": dt.date(2024, 1, 2), "t": dt.datetime(2024, 1, 2, 3), "s": "é"},
                    {"d": nothing, "t": nothing, "s": nothing},
                    nothing,
                ]
            ),
            "map": pa.array([[("k", 1)], [], nothing], pa.map_(pa.string(), pa.int64())),
            "null": pa.array([nothing] * 3, pa.null()),
        }
    )

    rows = read(write_parquet(tmp_path, table), batch_size=2)

    assert pl.concat(b.frame for b in rows).drop(ROW).to_dict(as_series=False) == {
        "int8": ["1", "-2", ""],
        "uint64": ["18446744073709551615", "0", ""],
        "float64": ["1e-7", "1.234567890123456e+14", "0.000015"],
        "float64_whole": ["10000000000000000000000", "17976931348623157" + "0" * 292, "0"],
        "float32": ["0.33333334", "16777216", "340000000000000000000000000000000000000"],
        "float16": ["0.0999755859375", "", "2"],  # the half float's exact value
        "timestamp_ns": ["2024-03-20T10:00:00", "2024-03-20T10:00:00.000000001", ""],
        "timestamp_tz": ["2024-03-20T09:00:00Z", "2024-03-20T09:00:00.123Z", ""],
        "timestamp_offset": ["2024-03-20T09:00:00Z"] * 3,
        "year_10000": ["10000-01-02T00:00:00", "", "0000-01-01T00:00:00"],
        "decimal": ["1.50", "", "-123.45"],
        "large_string": ["a", "é", ""],
        "binary": ["abc", "\\xff\\xfe", ""],
        "fixed_binary": ["ab", "é", ""],
        "dictionary": ["x", "y", ""],
        "list": ["[1, 2]", "[]", ""],
        "list_float32": ["[0.10000000149011612]", "[NaN]", ""],
        "struct": [
            '{"d": "2024-01-02", "t": "2024-01-02 03:00:00", "s": "é"}',
            '{"d": null, "t": null, "s": null}',
            "",
        ],
        "map": ['[["k", 1]]', "[]", ""],
        "null": ["", "", ""],
    }


def test_parquet_times_of_day_and_durations_as_polars_reads_them(tmp_path: Path) -> None:
    """Polars reads every time of day in nanoseconds and second durations in milliseconds, so the
    text cannot follow the column's unit as pyarrow's did ("10:00:00.000", "3600")."""
    table = pa.table(
        {
            "time_ms": pa.array([dt.time(10), dt.time(23, 59, 59, 500000), None], pa.time32("ms")),
            "time_us": pa.array([dt.time(10), dt.time(0, 0, 0, 5), None], pa.time64("us")),
            "duration_s": pa.array([3600, -5, None], pa.duration("s")),
            "duration_us": pa.array([3600, 1500000, None], pa.duration("us")),
        }
    )
    assert read_rows(write_parquet(tmp_path, table)) == [
        (1, "10:00:00", "10:00:00", "3600000", "3600"),
        (2, "23:59:59.500", "00:00:00.000005", "-5000", "1500000"),
        (3, "", "", "", ""),
    ]


def arrow_float_text(value: float | None, text: str | None) -> str:
    """What the pyarrow reader wrote for a float, from Arrow's own text of it."""
    if value is None or value != value:
        return ""
    if value in (float("inf"), float("-inf")) or not value.is_integer():
        return str(text)
    return str(int(Decimal(str(text))))


@pytest.mark.parametrize("width", ["float32", "float64"])
def test_parquet_floats_are_written_as_arrows_formatter_wrote_them(
    tmp_path: Path, width: str
) -> None:
    """Random bit patterns and decimal-looking values of every magnitude, against Arrow's own
    shortest text (integral values written out in full, as the pyarrow reader did)."""
    rng = random.Random(16)
    bits, pack = (32, "<f") if width == "float32" else (64, "<d")
    values: list[float | None] = [None, 0.0, -0.0, 1e-4, 1e9, 2.0**24, 2.0**53, 5e-324]
    for _ in range(20_000):
        values.append(struct.unpack(pack, rng.getrandbits(bits).to_bytes(bits // 8, "little"))[0])
        values.append(round(rng.uniform(-1, 1) * 10.0 ** rng.randint(-12, 24), rng.randint(0, 9)))
    array = pa.array(values, pa.float64()).cast(getattr(pa, width)(), safe=False)
    arrow = [
        arrow_float_text(v, t)
        for v, t in zip(array.to_pylist(), pc.cast(array, pa.string()).to_pylist(), strict=True)
    ]
    path = write_parquet(tmp_path, pa.table({"x": array}))
    assert [text for (_, text) in read_rows(path, batch_size=7_000)] == arrow


def test_parquet_is_read_a_window_at_a_time_with_exact_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows of whole batches (9 rows here): batches and numbers run on across them."""
    monkeypatch.setattr(parquet_file, "_READ_CELLS", 10)
    path = write_parquet(tmp_path, pa.table({"id": list(range(1, 21))}))
    with open_source(SourceConfig(batch_size=3), path) as source:
        batches = list(source.batches(first=2))
        numbers_only = list(source.batches([]))
    assert [b.frame.height for b in batches] == [2, 1, 3, 3, 3, 3, 3, 2]
    assert rows_of(batches) == [(n, str(n)) for n in range(1, 21)]
    assert rows_of(numbers_only) == [(n,) for n in range(1, 21)]
    assert_conserved(batches, 20)


def test_parquet_damaged_after_its_first_batches_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet_file, "_READ_CELLS", 10_000)  # a window is one batch
    table = pa.table({"id": [f"C-{n:06d}" for n in range(20_000)]})
    path = tmp_path / "export.parquet"
    pq.write_table(table, path, row_group_size=10_000, use_dictionary=False)
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[middle : middle + 200] = bytes(range(200))  # the second row group's pages
    path.write_bytes(bytes(data))
    with open_source(SourceConfig(batch_size=10_000), path) as source:
        reader = source.batches()
        assert next(reader).frame.height == 10_000
        with pytest.raises(InputError, match=r"export.parquet: cannot read the Parquet file: "):
            next(reader)


def test_parquet_path_is_a_file_name_not_a_glob_or_hive_partition(tmp_path: Path) -> None:
    folder = tmp_path / "year=2024"
    folder.mkdir()
    path = folder / "export[1]*.parquet"
    pq.write_table(pa.table({"id": [7]}), path)
    with open_source(SourceConfig(), path) as source:
        assert source.header == ["id"]
        assert rows_of(list(source.batches())) == [(1, "7")]


def test_parquet_repeated_column_names_are_read_by_position(tmp_path: Path) -> None:
    """Polars cannot read such a file; pyarrow (the cloud extra, installed here) reads it."""
    table = pa.table([[1, 2], ["a", "b"], [3.5, None]], names=["id", "name", "id"])
    with open_source(SourceConfig(batch_size=1), write_parquet(tmp_path, table)) as source:
        assert (source.header, source.columns) == (["id", "name", "id"], ["id", "name", "id_2"])
        assert rows_of(list(source.batches(["id_2", "id"]))) == [(1, "3.5", "1"), (2, "", "2")]


def test_parquet_repeated_column_names_without_pyarrow_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_parquet(tmp_path, pa.table([[1], [2]], names=["id", "id"]))
    for name in [name for name in sys.modules if name.split(".")[0] == "pyarrow"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"repeats a column name.*'customer-import\[cloud\]'"):
        open_source(SourceConfig(), path)


# --- files that cannot be read -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        pytest.param("missing.csv", None, "file not found", id="missing"),
        pytest.param("export.csv", b"", "empty.*header", id="empty"),
        pytest.param("export.csv", b"\n \r\n\n", "header.*blank", id="only-blank-lines"),
        pytest.param("export.csv.gz", gzip.compress(b""), "header", id="empty-gzip"),
        pytest.param("export.csv", b",,\n1,2,3\n", "header.*no column names", id="no-names"),
        pytest.param("export.csv", b'id,"name\n1,a\n', "header.*quote", id="broken-header"),
        pytest.param("export.xlsx", b"PK\x03\x04", "not a readable .xlsx", id="xlsx"),
        pytest.param("export.xls", b"\xd0\xcf", "unsupported.*\\.csv", id="xls"),
        pytest.param("export.json", b"[]", "unsupported", id="json"),
        pytest.param("export.csv.gz", b"not gzip", "cannot read", id="bad-gzip"),
    ],
)
def test_unreadable_input_is_an_input_error(
    tmp_path: Path, name: str, data: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        open_source(SourceConfig(), path)


def test_file_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    data = b"id,name\n" * 200_000
    path = write(tmp_path, data)
    assert file_digest(path) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_source_digest_is_the_file_digest_and_its_name_the_path_given(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\n1,a\n")
    with open_source(SourceConfig(), path) as source:
        assert (
            source.digest
            == file_digest(path)
            == "sha256:" + hashlib.sha256(b"id,name\n1,a\n").hexdigest()
        )
        assert (source.name, source.path) == (str(path), path)
