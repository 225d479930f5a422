"""Pure: values that look double-encoded (mojibake) in a batch's mapped text columns.

Text written as UTF-8 and then read with another codec somewhere before the export was made
is valid UTF-8 that is wrong: 'Pérez' read as Windows-1252 becomes 'PÃ©rez', 'René' read as
Mac Roman becomes 'Ren√©', a curly apostrophe becomes 'â€™', and a character already lost
shows as U+FFFD ('Coll�ge', or 'CollÔøΩge' after one more round). The job cannot undo it
safely (the same letters can be meant, and a guess would change data silently), so such values
are imported as they are and counted here, for a warning that names the fields.

The patterns are the UTF-8 lead byte of a 2-, 3- or 4-byte sequence followed by its
continuation bytes, as Windows-1252/Latin-1 or Mac Roman show them: sequences that do not occur
in real names, emails or phones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from customer_import.logs import mask_value

EXAMPLES: Final = 3
#: A field's suspect values are worth a warning from this share of its values, or this many.
FREQUENT_SHARE: Final = 0.01
FREQUENT_VALUES: Final = 100

# Bytes 0x80-0xBF as Latin-1 (C1 controls and symbols) and 0x80-0x9F as Windows-1252.
_CONT_1252 = "[\\x{80}-\\x{BF}€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]"
# Bytes 0x80-0xBF as Mac Roman.
_CONT_MAC = "[ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø]"
DOUBLE_ENCODED: Final = "|".join(
    [
        f"[\\x{{C2}}-\\x{{DF}}]{_CONT_1252}",  # 'Ã©' for é, 'Ð¸' for и
        f"[\\x{{E0}}-\\x{{EF}}]{_CONT_1252}{{2}}",  # 'â€™' for ’, 'ï»¿' for a BOM
        f"[\\x{{F0}}-\\x{{F4}}]{_CONT_1252}{{3}}",  # emoji
        f"[¬√ƒ≈]{_CONT_MAC}",  # Mac Roman: '√©' for é, 'ƒç' for ć
        f"[‚Ô]{_CONT_MAC}{{2}}",  # Mac Roman: '‚Äô' for ’, 'ÔøΩ' for U+FFFD
        "\\x{FFFD}",  # a character lost by an earlier decoding
    ]
)


@dataclass(frozen=True, slots=True)
class SuspectText:
    """How many values of one field look double-encoded, with a few of them."""

    field: str
    checked: int
    """Non-empty values looked at."""
    suspect: int
    """Values that look double-encoded."""
    examples: tuple[str, ...]
    """Up to EXAMPLES distinct suspect values, as read (mask before showing them)."""

    @property
    def frequent(self) -> bool:
        if not self.suspect:
            return False
        return self.suspect >= FREQUENT_VALUES or self.suspect >= FREQUENT_SHARE * self.checked

    def merged(self, other: SuspectText) -> SuspectText:
        """This field's counts over two batches."""
        kept = self.examples + tuple(e for e in other.examples if e not in self.examples)
        return SuspectText(
            self.field,
            self.checked + other.checked,
            self.suspect + other.suspect,
            kept[:EXAMPLES],
        )


def find_double_encoded(
    frame: pl.DataFrame, columns: Sequence[str] | None = None
) -> dict[str, SuspectText]:
    """Per text column (``columns``, or every String column), values that look double-encoded.

    Every column is in the result, so counts merged over batches give true shares. One
    pass of Polars expressions over the batch; examples are taken only where there are suspects.
    Every pattern holds a character beyond ASCII: only such values are searched (a quarter of
    the time of searching them all).
    """
    names = list(columns) if columns is not None else frame.select(pl.col(pl.String)).columns
    if not names or frame.is_empty():
        return {}
    counts = frame.select(
        *(pl.col(c).is_not_null().sum().alias(f"checked:{c}") for c in names),
        *(_beyond_ascii(c).str.contains(DOUBLE_ENCODED).sum().alias(f"suspect:{c}") for c in names),
    ).row(0, named=True)
    return {
        name: SuspectText(
            name,
            counts[f"checked:{name}"],
            counts[f"suspect:{name}"],
            _examples(frame[name]) if counts[f"suspect:{name}"] else (),
        )
        for name in names
    }


def _beyond_ascii(column: str) -> pl.Expr:
    """The column's values that hold a character beyond ASCII."""
    value = pl.col(column)
    return value.filter(value.str.len_bytes() != value.str.len_chars())


def merge_counts(
    totals: Mapping[str, SuspectText], batch: Mapping[str, SuspectText]
) -> dict[str, SuspectText]:
    """Counts of several batches, field by field."""
    merged = dict(totals)
    for name, found in batch.items():
        merged[name] = merged[name].merged(found) if name in merged else found
    return merged


def double_encoding_warning(found: SuspectText) -> str:
    """The log line and summary.json warning for one field; emails and phones masked."""
    shown = ", ".join(repr(mask_value(found.field, e)) for e in found.examples)
    return (
        f"{found.field}: {found.suspect} of {found.checked} values look double-encoded "
        f"(e.g. {shown}): the text was decoded with the wrong encoding before this export was "
        f"written. They are imported as they are; correct them in the system the export "
        f"comes from"
    )


def _examples(values: pl.Series) -> tuple[str, ...]:
    suspect = values.filter(values.str.contains(DOUBLE_ENCODED).fill_null(False))
    return tuple(suspect.unique(maintain_order=True).head(EXAMPLES).to_list())
