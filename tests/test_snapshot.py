"""The incremental state's storage: the diff index, segments, generations, the old format."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from customer_import.record import segments
from customer_import.record.snapshot import (
    PartWriter,
    Snapshot,
    StateLocation,
    describe,
    last_bodies,
    merge,
    missing_since_last_run,
    read_meta,
)

FINGERPRINT = "mapping-v1"


def body(i: int, name: str = "Ada") -> str:
    return json.dumps({"externalId": f"C-{i}", "firstName": f"{name}{i}"})


def location(tmp_path: Path) -> StateLocation:
    return StateLocation(tmp_path / "state", "job-abc")


def sync(where: StateLocation, bodies: dict[str, str], *, seen: list[str] | None = None) -> int:
    """What a run that sent ``bodies`` (all successfully) and read ``seen`` leaves."""
    parts = PartWriter(where.work)
    ids = list(bodies)
    parts.seen(pl.Series(seen if seen is not None else ids, dtype=pl.String))
    rows = pl.Series(range(1, len(ids) + 1), dtype=pl.Int64)
    parts.sent(rows, pl.Series(ids, dtype=pl.String), pl.Series(list(bodies.values())))
    return merge(where, FINGERPRINT, rows, export_complete=True)


def test_unchanged_needs_the_same_id_and_the_same_body(tmp_path: Path) -> None:
    where = location(tmp_path)
    sync(where, {f"C-{i}": body(i) for i in range(100)})
    snapshot = Snapshot(where, FINGERPRINT)

    ids = pl.Series(["C-5", "C-6", "C-7", "C-100", "C-8"])
    bodies = pl.Series([body(5), body(6, "Grace"), body(8), body(100), body(8)])

    assert snapshot.unchanged_mask(ids, bodies).to_list() == [True, False, False, False, True]


def test_a_snapshot_of_another_mapping_compares_nothing(tmp_path: Path) -> None:
    where = location(tmp_path)
    sync(where, {"C-1": body(1)})
    snapshot = Snapshot(where, "mapping-v2")
    assert not snapshot.usable
    assert snapshot.unchanged_mask(pl.Series(["C-1"]), pl.Series([body(1)])).to_list() == [False]


def test_merge_keeps_the_old_bodies_replaces_the_sent_and_flags_the_export(
    tmp_path: Path,
) -> None:
    where = location(tmp_path)
    sync(where, {f"C-{i}": body(i) for i in range(5)})
    size = sync(where, {"C-1": body(1, "Grace"), "C-9": body(9)}, seen=["C-0", "C-1", "C-9"])

    assert size == 6
    snapshot = Snapshot(where, FINGERPRINT)
    last = snapshot.last_export_ids()
    assert last is not None and sorted(last.to_list()) == ["C-0", "C-1", "C-9"]
    assert snapshot.unchanged_mask(pl.Series(["C-1"]), pl.Series([body(1, "Grace")])).item()
    assert snapshot.unchanged_mask(pl.Series(["C-3"]), pl.Series([body(3)])).item()
    assert read_meta(where)["generation"] == "snapshot-000002"
    assert [p.name for p in where.folder.glob("snapshot-*")] == ["snapshot-000002"]


def test_missing_ids_then_only_their_bodies(tmp_path: Path) -> None:
    where = location(tmp_path)
    sync(where, {f"C-{i}": body(i) for i in range(4)})
    snapshot = Snapshot(where, FINGERPRINT)
    PartWriter(where.work).seen(pl.Series(["C-0", "C-2"]))

    gone = missing_since_last_run(snapshot, where.work)

    assert gone.to_list() == ["C-1", "C-3"]
    assert last_bodies(snapshot, gone).rows() == [("C-1", body(1)), ("C-3", body(3))]


def test_a_big_snapshot_is_cut_into_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segments, "SEGMENT_ROWS", 7)
    where = location(tmp_path)
    sync(where, {f"C-{i}": body(i) for i in range(30)})

    files = sorted((where.folder / "snapshot-000001").glob("*.parquet"))
    assert [pl.read_parquet(f).height for f in files] == [7, 7, 7, 7, 2]
    assert describe(where, FINGERPRINT)["customers"] == 30


def test_a_crash_before_the_commit_leaves_the_last_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = location(tmp_path)
    sync(where, {"C-1": body(1)})

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("customer_import.record.snapshot._write_meta", crash)
    with pytest.raises(OSError):
        sync(where, {"C-1": body(1, "Grace")})
    monkeypatch.undo()

    snapshot = Snapshot(where, FINGERPRINT)
    assert snapshot.unchanged_mask(pl.Series(["C-1"]), pl.Series([body(1)])).item()
    sync(where, {"C-2": body(2)})  # the next merge removes the stray generation
    assert [p.name for p in where.folder.glob("snapshot-*")] == ["snapshot-000002"]


def test_a_format_1_snapshot_is_read_and_replaced_by_a_generation(tmp_path: Path) -> None:
    where = location(tmp_path)
    where.folder.mkdir(parents=True)
    pl.DataFrame(
        {"externalId": ["C-1", "C-2"], "body": [body(1), body(2)], "in_last_export": [True, True]}
    ).write_parquet(where.folder / "snapshot.parquet")
    where.meta.write_text(json.dumps({"mapping": FINGERPRINT, "records": 2}))

    snapshot = Snapshot(where, FINGERPRINT)
    assert snapshot.unchanged_mask(pl.Series(["C-2"]), pl.Series([body(2)])).item()

    assert sync(where, {"C-3": body(3)}, seen=["C-1", "C-2", "C-3"]) == 3
    assert not (where.folder / "snapshot.parquet").exists()
    assert read_meta(where)["format"] == segments.FORMAT
