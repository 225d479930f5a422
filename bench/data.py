"""Generated customer exports for the benchmarks: CSV or Parquet, a job file, request bodies.

    .venv/bin/python bench/data.py --rows 1000000 --out bench/data/customers.csv
    .venv/bin/python bench/data.py --rows 20000 --check-bodies   # bodies == the job's?

Records look like a real export: ids ``C-0000001``, names (some accented, some with a comma),
emails mostly lowercase ascii (about 5 % upper-case, 1 % invalid, 2 % empty), phones in mixed
formats (``(212) 555-0123``, ``+1-212-555-0123``, ``212.555.0123``, ``+44 20 7946 0123``;
about 1 % invalid such as ``1234``, 2 % empty), status Active/Inactive, opt-ins yes/no.
Almost every phone and email is distinct, so the job's per-value caches do not flatter it.

Generation is vectorised (Polars, hashes of the row number: the same rows for the same seed)
and written in chunks: 5,000,000 rows take a few seconds and little memory.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import polars.selectors as cs

CHUNK_ROWS: Final = 500_000
HEADER: Final = {
    "id": "Customer No.",
    "first": "First Name",
    "last": "Last Name",
    "email": "E-Mail",
    "phone": "Mobile",
    "status": "Status",
    "email_opt_in": "Email Opt-In",
    "sms_opt_in": "SMS Opt-In",
}
_PLAIN_FIRST: Final = """
    Ada Grace Alan Katherine Linus Barbara Edsger Donald Margaret Ken Dennis Frances John Mary
    James Patricia Robert Jennifer Michael Linda William Elizabeth David Susan Richard Jessica
    Joseph Sarah Thomas Karen Charles Nancy Daniel Lisa Matthew Betty Anthony Sandra Mark Ashley
    Paul Emily Steven Donna Andrew Michelle Joshua Carol Kenneth Amanda Kevin Melissa Brian
    Deborah George Stephanie Timothy Rebecca Ronald Laura Jason Sharon Edward Cynthia Jeffrey
    Kathleen Ryan Amy Jacob Angela
"""
_PLAIN_LAST: Final = """
    Lovelace Hopper Turing Johnson Torvalds Liskov Dijkstra Knuth Hamilton Thompson Ritchie Allen
    Smith Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
    Wilson Anderson Taylor Moore Jackson Martin Lee Perez White Harris Sanchez Clark Ramirez Lewis
    Robinson Walker Young King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker
    Hall Rivera Campbell Mitchell
"""
# (as written, ascii for the email address)
FIRST_NAMES: Final = [(n, n.lower()) for n in _PLAIN_FIRST.split()] + [
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Björn", "bjorn"),
    ("Chloé", "chloe"),
    ("Mary-Jane", "mary-jane"),
]
LAST_NAMES: Final = [(n, n.lower()) for n in _PLAIN_LAST.split()] + [
    ("O'Brien", "obrien"),
    ("Müller", "muller"),
    ("Núñez", "nunez"),
    ("Doe, Jr.", "doe"),
    ("van der Berg", "vanderberg"),
]
DOMAINS: Final = ["example.com", "example.net", "example.org", "mail.example.com", "corp.example"]
US_AREAS: Final = [201, 202, 212, 213, 305, 310, 312, 404, 415, 503, 512, 617, 646, 702, 718, 917]


def customers(rows: int, *, start: int = 1, seed: int = 7) -> pl.DataFrame:
    """``rows`` records numbered from ``start``.

    Beside the export's columns, ``_email`` and ``_phone`` hold what the job should send
    (normalised) and ``_valid`` whether it should send the record at all. Working columns are
    named ``t_*`` and dropped at the end.
    """
    frame = pl.DataFrame({"i": pl.int_range(start, start + rows, eager=True, dtype=pl.Int64)})
    frame = frame.with_columns(
        *(_draw(seed + k).alias(f"t_h{k}") for k in range(1, 9)),
        _number(seed + 9).alias("t_n"),
        pl.col("i").cast(pl.String).alias("t_i"),
    )
    first, last = _names(FIRST_NAMES, pl.col("t_h1")), _names(LAST_NAMES, pl.col("t_h2"))
    frame = frame.with_columns(
        first=first[0], t_first_a=first[1], t_first_t=first[2],
        last=last[0], t_last_a=last[1], t_last_u=last[3],
    )  # fmt: skip
    for stage in [_email_columns(), *_phone_stages()]:
        frame = frame.with_columns(stage)
    return frame.with_columns(
        id=pl.lit("C-") + (pl.col("i") + 10_000_000).cast(pl.String).str.slice(1),
        status=pl.when(pl.col("t_h8") < 85).then(pl.lit("Active")).otherwise(pl.lit("Inactive")),
        email_opt_in=_yes_no(pl.col("t_h7") < 60),
        sms_opt_in=_yes_no(pl.col("t_h7") % 7 < 2),
        _valid=pl.col("_email_ok") & pl.col("_phone_ok"),
    ).drop(cs.starts_with("t_"))


def _draw(seed: int) -> pl.Expr:
    """A pseudo-random integer in 0..99 per row, repeatable for a seed."""
    return (pl.col("i").hash(seed) % 100).cast(pl.Int64)


def _number(seed: int) -> pl.Expr:
    """A pseudo-random 64-bit integer per row, to cut digits from."""
    return (pl.col("i").hash(seed) // 2).cast(pl.Int64)


def _pick(values: list[str], index: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(values)).gather(index % len(values))


def _names(names: list[tuple[str, str]], index: pl.Expr) -> tuple[pl.Expr, ...]:
    """(as written, ascii, Title ascii, UPPER ascii) of the name drawn by ``index``."""
    return (
        _pick([n for n, _ in names], index),
        _pick([a for _, a in names], index),
        _pick([a.title() for _, a in names], index),
        _pick([a.upper() for _, a in names], index),
    )


def _yes_no(condition: pl.Expr) -> pl.Expr:
    return pl.when(condition).then(pl.lit("yes")).otherwise(pl.lit("no"))


def _email_columns() -> list[pl.Expr]:
    """t_h3 picks the shape: 0-1 empty, 2 invalid (no dot in the domain), 3-7 upper-case."""
    shape, which = pl.col("t_h3"), pl.col("t_h4")
    upper = (shape >= 3) & (shape < 8)
    upper_local = pl.col("t_first_t") + pl.lit(".") + pl.col("t_last_u")
    plain_local = pl.col("t_first_a") + pl.lit(".") + pl.col("t_last_a")
    local = pl.when(upper).then(upper_local).otherwise(plain_local) + pl.col("t_i")
    domain = _pick(DOMAINS, which)
    written_domain = (
        pl.when(shape == 2)
        .then(_pick([d.split(".")[0] for d in DOMAINS], which))
        .when(upper)
        .then(_pick([d.upper() for d in DOMAINS], which))
        .otherwise(domain)
    )
    return [
        pl.when(shape >= 2).then(local + pl.lit("@") + written_domain).alias("email"),
        pl.when(shape >= 2).then(local + pl.lit("@") + domain).alias("_email"),
        (shape != 2).alias("_email_ok"),
    ]


# how a number is written, per style: (before part 1, between 1 and 2, between 2 and 3)
_US_STYLES: Final = [("(", ") ", "-"), ("+1-", "-", "-"), ("", ".", "."), ("(", ") ", "-")]
_UK_STYLE: Final = ("+44 ", " ", " ")


def _phone_stages() -> list[list[pl.Expr]]:
    """t_h5 picks the shape: 0-1 empty, 2 invalid, 3-7 UK drama range, 8-12 London, US after.

    A number is three integer parts (US: area, exchange, line; UK: 20, 7946/7xxx, line), so
    no string is sliced or padded. Two stages: the parts are computed once, then joined.
    """
    shape, n, uk = pl.col("t_h5"), pl.col("t_n"), pl.col("t_uk")
    drama = shape < 8
    exchange = 200 + (n // 100_000) % 800
    exchange = pl.when((exchange % 100 == 11) | (exchange == 555)).then(exchange + 1)
    exchange = exchange.otherwise(200 + (n // 100_000) % 800)
    part2 = pl.when(drama).then(7946).when(uk).then(7000 + (n // 100_000) % 1000)
    part3 = pl.when(drama).then(100 + n % 900).otherwise(1000 + n % 9000).cast(pl.String)
    style = pl.col("t_h6") % len(_US_STYLES)
    parts = [
        pl.when(uk).then(20).otherwise(_pick_int(US_AREAS, n // 10)).cast(pl.String).alias("t_p1"),
        part2.otherwise(exchange).cast(pl.String).alias("t_p2"),
        pl.when(drama).then(pl.lit("0") + part3).otherwise(part3).alias("t_p3"),
        *(
            pl.when(uk)
            .then(pl.lit(_UK_STYLE[k]))
            .otherwise(_pick([s[k] for s in _US_STYLES], style))
            .alias(f"t_s{k}")
            for k in range(3)
        ),
    ]
    written = pl.concat_str("t_s0", "t_p1", "t_s1", "t_p2", "t_s2", "t_p3")
    invalid = pl.when(n % 2 == 0).then(pl.lit("1234")).otherwise(pl.lit("555-12"))
    country = pl.when(uk).then(pl.lit("+44")).otherwise(pl.lit("+1"))
    return [
        [(shape < 13).alias("t_uk")],
        parts,
        [
            pl.when(shape == 2).then(invalid).when(shape > 2).then(written).alias("phone"),
            pl.when(shape > 2).then(pl.concat_str(country, "t_p1", "t_p2", "t_p3")).alias("_phone"),
            (shape != 2).alias("_phone_ok"),
        ],
    ]


def _pick_int(values: list[int], index: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(values, dtype=pl.Int64)).gather(index % len(values))


def export_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns as a merchant's export has them (header names of ``HEADER``)."""
    return frame.select(pl.col(list(HEADER)).name.map(HEADER.__getitem__))


def chunks(rows: int, seed: int = 7) -> Iterator[pl.DataFrame]:
    for start in range(1, rows + 1, CHUNK_ROWS):
        yield customers(min(CHUNK_ROWS, rows - start + 1), start=start, seed=seed)


def write_csv(path: Path, rows: int, seed: int = 7) -> Path:
    """``rows`` records as a UTF-8 CSV with a header, written chunk by chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for number, frame in enumerate(chunks(rows, seed)):
            export_frame(frame).write_csv(f, include_header=number == 0)
    return path


def write_parquet(path: Path, rows: int, seed: int = 7) -> Path:
    """The same records as Parquet (all columns text, as in the CSV), row group per chunk."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for frame in chunks(rows, seed):
            table = export_frame(frame).to_arrow()
            writer = writer or pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def request_bodies(rows: int, seed: int = 7) -> list[bytes]:
    """The JSON bodies the job should send for the valid records, in file order.

    Same field order, compact separators and omitted empty fields as the job's bodies.
    """
    bodies = []
    for frame in chunks(rows, seed):
        for row in frame.filter(pl.col("_valid")).iter_rows(named=True):
            bodies.append(_body(row))
    return bodies


def _body(row: dict[str, object]) -> bytes:
    body: dict[str, object] = {"externalId": row["id"], "firstName": row["first"]}
    body["lastName"] = row["last"]
    if row["_email"] is not None:
        body["email"] = row["_email"]
    if row["_phone"] is not None:
        body["phoneNumber"] = row["_phone"]
    body["active"] = row["status"] == "Active"
    body["notificationOptions"] = {
        "notifyEmail": row["email_opt_in"] == "yes",
        "notifyPhone": row["sms_opt_in"] == "yes",
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def write_bodies(path: Path, bodies: list[bytes]) -> Path:
    """One body a line (JSON text holds no raw newline), for the bare client loops."""
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return path


def read_bodies(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line]


def write_job(
    path: Path, source: Path, out_dir: Path, *, concurrency: int = 64, name: str = "bench"
) -> Path:
    """A job file for the generated export, in the format of jobs/demo.toml.

    ``max_invalid_ratio = 1.0``: the generated rejects must not stop the run. The base URL is a
    placeholder: every benchmark passes ``--base-url`` with its sandbox's port.
    """
    path.write_text(
        f"""name = "{name}"
max_invalid_ratio = 1.0

[source]
path = {json.dumps(str(source))}

[mapping]
externalId = "Customer No."
firstName = "First Name"
lastName = "Last Name"
email = "E-Mail"
phoneNumber = {{ column = "Mobile", default_region = "US" }}
active = {{ column = "Status", true = ["Active"], false = ["Inactive"] }}
"notificationOptions.notifyEmail" = {{ column = "Email Opt-In" }}
"notificationOptions.notifyPhone" = {{ column = "SMS Opt-In" }}

[api]
base_url = "http://127.0.0.1:9"
concurrency = {concurrency}

[output]
dir = {json.dumps(str(out_dir))}
""",
        encoding="utf-8",
    )
    return path


def job_bodies(job_file: Path) -> list[bytes]:
    """The bodies the job's own mapping and Validator build for a job's source (no sending)."""
    from customer_import.config import load_job
    from customer_import.contracts import BODY
    from customer_import.source import open_source
    from customer_import.transform.mapping import map_batch, plan_mapping
    from customer_import.transform.validation import Validator

    job = load_job(job_file)
    assert job.source.path is not None
    bodies: list[bytes] = []
    with open_source(job.source, job.source.path) as source:
        plan = plan_mapping(job.mapping, source.header, source.columns, job.source.null_values)
        validator = Validator(plan)
        for batch in source.batches():
            valid = validator.validate(map_batch(batch.frame, plan)).valid
            bodies += [body.encode() for body in valid[BODY].to_list()]
    return bodies


def check_bodies(rows: int, work: Path) -> bool:
    """Whether ``request_bodies`` equals what the job builds, byte for byte."""
    csv = write_csv(work / "check.csv", rows)
    job = write_job(work / "check.toml", csv.resolve(), (work / "out").resolve())
    return job_bodies(job) == request_bodies(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path("bench/data/customers.csv"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parquet", action="store_true", help="write Parquet instead of CSV")
    parser.add_argument(
        "--check-bodies", action="store_true", help="compare request_bodies() with the job's"
    )
    args = parser.parse_args()
    if args.check_bodies:
        same = check_bodies(args.rows, args.out.parent)
        print(f"{args.rows:,} rows: bodies {'identical to' if same else 'DIFFER from'} the job's")
        raise SystemExit(0 if same else 1)
    started = time.perf_counter()
    writer = write_parquet if args.parquet else write_csv
    path = writer(args.out, args.rows, args.seed)
    size = path.stat().st_size / 1e6
    print(f"{args.rows:,} rows, {size:.0f} MB: {path} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
