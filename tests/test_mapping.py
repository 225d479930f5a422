"""Pure mapping: which column feeds which field, and how cells are cleaned."""

from __future__ import annotations

import polars as pl
import pytest

from customer_import.config import MappingConfig
from customer_import.contracts import ROW
from customer_import.errors import ConfigError
from customer_import.transform.mapping import map_batch, plan_mapping

NULLS = ["", "NULL", "N/A"]


def mapped(mapping: dict[str, object], **columns: list[str]) -> list[dict[str, object]]:
    config = MappingConfig.model_validate({"externalId": "id", "firstName": "first", **mapping})
    names = list(columns)
    plan = plan_mapping(config, names, names, NULLS)
    rows = len(next(iter(columns.values())))
    frame = pl.DataFrame({ROW: list(range(1, rows + 1)), **columns})
    return map_batch(frame, plan).drop(ROW).to_dicts()


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("  Ada  ", "Ada"),
        ("\u00a0Ada\t", "Ada"),  # non-breaking space and tab are whitespace too
        (" ", None),
        ("", None),
        ("NULL", None),
        (" N/A ", None),
        ("Null", "Null"),  # a real surname: only the configured tokens are null
        ("null", "null"),
    ],
)
def test_cells_are_trimmed_and_null_tokens_become_empty(cell: str, expected: str | None) -> None:
    assert mapped({}, id=["1"], first=[cell])[0]["firstName"] == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("000123", "000123"),
        ("'000123", "000123"),
        ("' 42", "42"),
        ("'", None),
        ("''7", "'7"),
        ("  ' x ", "x"),
    ],
)
def test_ids_keep_leading_zeros_and_lose_excels_apostrophe(cell: str, expected: str | None) -> None:
    assert mapped({}, id=[cell], first=["A"])[0]["externalId"] == expected


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Mary Ann Smith", "Mary Ann", "Smith"),
        ("  John   Ronald  Tolkien ", "John Ronald", "Tolkien"),
        ("Cher", "Cher", None),
        ("", None, None),
    ],
)
def test_a_full_name_column_is_split_explicitly(
    name: str, first: str | None, last: str | None
) -> None:
    mapping: dict[str, object] = {
        "firstName": {"column": "name", "part": "first"},
        "lastName": {"column": "name", "part": "last"},
    }
    row = mapped(mapping, id=["1"], name=[name])[0]
    assert (row["firstName"], row["lastName"]) == (first, last)


def test_a_constant_fills_every_record() -> None:
    rows = mapped(
        {"active": {"value": True}, "lastName": {"value": "Doe"}}, id=["1", "2"], first=["A", "B"]
    )
    assert [(r["active"], r["lastName"]) for r in rows] == [("true", "Doe"), ("true", "Doe")]


def test_columns_can_be_named_by_position_in_a_headerless_file() -> None:
    config = MappingConfig.model_validate({"externalId": 2, "firstName": 1})
    columns = ["column_1", "column_2"]
    plan = plan_mapping(config, columns, columns, NULLS)
    frame = pl.DataFrame({ROW: [1], "column_1": ["Ada"], "column_2": ["7"]})
    assert map_batch(frame, plan).drop(ROW).to_dicts() == [{"externalId": "7", "firstName": "Ada"}]


def test_a_position_beyond_the_last_column_is_a_configuration_error() -> None:
    config = MappingConfig.model_validate({"externalId": 3, "firstName": 1})
    with pytest.raises(ConfigError, match="names column 3, but the file has 2 columns"):
        plan_mapping(config, ["a", "b"], ["a", "b"], NULLS)


def test_a_missing_column_is_named_with_the_columns_the_file_has() -> None:
    config = MappingConfig.model_validate({"externalId": "Id", "firstName": "First"})
    with pytest.raises(
        ConfigError, match=r"'Id', which the file does not have; its columns are: 'id', 'First'"
    ):
        plan_mapping(config, ["id", "First"], ["id", "First"], NULLS)


def test_a_repeated_header_is_never_picked_silently() -> None:
    header = ["id", "first", "Phone Number", "Phone Number"]
    columns = ["id", "first", "Phone Number", "Phone Number_2"]
    config = MappingConfig.model_validate(
        {"externalId": "id", "firstName": "first", "phoneNumber": "Phone Number"}
    )
    with pytest.raises(ConfigError, match=r"appears 2 times.*'Phone Number_1', 'Phone Number_2'"):
        plan_mapping(config, header, columns, NULLS)


@pytest.mark.parametrize(
    ("named", "resolved"),
    [("Phone Number_1", "Phone Number"), ("Phone Number_2", "Phone Number_2")],
)
def test_each_of_a_repeated_header_can_be_named(named: str, resolved: str) -> None:
    header = ["id", "first", "Phone Number", "Phone Number"]
    columns = ["id", "first", "Phone Number", "Phone Number_2"]
    config = MappingConfig.model_validate(
        {"externalId": "id", "firstName": "first", "phoneNumber": named}
    )
    plan = plan_mapping(config, header, columns, NULLS)
    assert plan.field("phoneNumber").column == resolved  # type: ignore[union-attr]
