"""The fast paths never disagree with the libraries: every value they accept, the library
accepts with the same normalised form."""

from __future__ import annotations

import random

import phonenumbers
import polars as pl
import pytest

from customer_import.transform.fastpath import fast_emails, fast_phones
from customer_import.transform.normalise import judge_email, judge_phone

PHONE_SHAPES = (
    "({a}) {b}-{c}", "{a}.{b}.{c}", "{a}-{b}-{c}", "{a} {b} {c}", "{a}{b}{c}",
    "+1-{a}-{b}-{c}", "+1 ({a}) {b}-{c}", "+1{a}{b}{c}", "1 {a} {b} {c}", "1-{a}-{b}-{c}",
    "({a}) {b}-{c} ext 12", "+44 {a} {b} {c}", "001-{a}-{b}-{c}", "'{a}-{b}-{c}",
)  # fmt: skip


def random_phones(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    phones = []
    for _ in range(count):
        parts = {"a": f"{rng.randrange(0, 1000):03d}", "b": f"{rng.randrange(0, 1000):03d}"}
        parts["c"] = f"{rng.randrange(0, 10000):04d}"
        phones.append(rng.choice(PHONE_SHAPES).format(**parts))
    return phones


EMAILS = [
    "ada@example.com", "Ada.Lovelace@Example.COM", "a+tag@sub.example.co.uk", "x_y%z@host-1.io",
    "a@b.co", "a@localhost", "a@x.test", "a@x.local", "a..b@example.com", ".a@example.com",
    "a.@example.com", "a@-x.com", "a@x-.com", "a@x..com", "a@x.c", "a@x.123", "a@xn--bcher-kva.com",
    "a@ab--cd.com", "ä@example.com", "a@exämple.com", "o'brien@example.com", "a b@example.com",
    "a@example.com.", "@example.com", "a@", "a@@example.com", "x" * 64 + "@example.com",
    "x" * 65 + "@example.com", "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
    "john.doe@gmail.com", "JOHN.DOE@GMAIL.COM", "a@a.b.c.d.e.f.g.example", "a-b@c-d.e-f.gh",
    "a@gmial.com", "a@gmail.com.com", "a@example.con", "a@HOTMIAL.COM",
]  # fmt: skip


@pytest.mark.parametrize("region", ["US", "GB", None])
def test_every_phone_the_fast_path_accepts_the_library_accepts_identically(
    region: str | None,
) -> None:
    phones = random_phones(3000)
    fast = fast_phones(pl.Series(phones), region).to_list()
    accepted = [(p, f) for p, f in zip(phones, fast, strict=True) if f is not None]
    assert len(accepted) > (300 if region == "US" else 50)  # the fast path does take a share
    for phone, normalised in accepted:
        assert judge_phone(phone, region) == (normalised, None), phone


def test_the_phone_fast_path_leaves_what_it_cannot_settle_to_the_library() -> None:
    values = [
        "+1 416 555 0123",  # Canada: another region of +1
        "(212) 555-0123 ext 12",  # an extension
        "001-212-555-0123",  # an international call prefix
        "+44 020 7946 0018",  # a national prefix after the country code
        "+44 7911 123456",  # +44, but Guernsey's number
        "+52 1 55 1234 5678",  # the mobile '1' Mexico retired
        "+39 06 6982 0000",  # Italy's leading zero
        "+800 1234 5678",  # a non-geographic code
        "+ 44 20 7946 0018",  # a space after the plus
    ]
    assert fast_phones(pl.Series(values), "US").to_list() == [None] * len(values)


def international_examples(seed: int = 11) -> list[str]:
    """libphonenumber's example numbers of every region and type, written as exports write
    them, and mutated (a digit changed, added or dropped, a 0 put in front)."""
    rng = random.Random(seed)

    def spaced(digits: str) -> str:
        return "".join(d + (rng.choice(" -.") if rng.random() < 0.3 else "") for d in digits)

    def mutated(national: str) -> str:
        i = rng.randrange(len(national))
        return rng.choice(
            [national[:i] + str(rng.randrange(10)) + national[i + 1 :], national + "5",
             national[:-1], "0" + national]
        )  # fmt: skip

    values = []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            for kind in range(11):
                example = (
                    phonenumbers.example_number_for_non_geo_entity(code)
                    if region == "001"
                    else phonenumbers.example_number_for_type(region, kind)
                )
                if example is None:
                    continue
                national = phonenumbers.national_significant_number(example)
                for variant in (national, mutated(national), mutated(national)):
                    values += [f"+{code}{variant}", f"+{code} {spaced(variant).strip(' -.')}"]
                    values.append(f"+{code} ({variant[:2]}) {variant[2:]}")
    return list(dict.fromkeys(values))


def test_every_international_number_the_fast_path_accepts_the_library_accepts_identically() -> None:
    values = international_examples()
    fast = fast_phones(pl.Series(values), "US").to_list()
    accepted = [(v, f) for v, f in zip(values, fast, strict=True) if f is not None]
    library_valid = sum(1 for v in values if judge_phone(v, "US")[1] is None)
    assert len(accepted) > 0.6 * library_valid  # most countries' numbers take the fast path
    for phone, normalised in accepted:
        assert judge_phone(phone, "US") == (normalised, None), phone


def test_every_email_the_fast_path_accepts_the_library_accepts_identically() -> None:
    fast = fast_emails(pl.Series(EMAILS)).to_list()
    accepted = [(e, f) for e, f in zip(EMAILS, fast, strict=True) if f is not None]
    assert len(accepted) >= 8
    for email, normalised in accepted:
        assert judge_email(email) == (normalised, None), email


def test_nulls_stay_null() -> None:
    assert fast_phones(pl.Series([None], dtype=pl.String), "US").to_list() == [None]
    assert fast_emails(pl.Series([None], dtype=pl.String)).to_list() == [None]


def test_misspelt_domains_are_left_to_the_judge_that_rejects_them() -> None:
    values = ["a@gmial.com", "a@gmail.com.com", "a@example.con", "a@HOTMIAL.COM"]
    assert fast_emails(pl.Series(values)).to_list() == [None] * 4
    assert all(judge_email(v)[1] for v in values)
