"""The fast paths never disagree with the libraries: every value they accept, the library
accepts with the same normalised form."""

from __future__ import annotations

import itertools
import random
import re

import phonenumbers
import polars as pl
import pytest
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneMetadata

from customer_import.transform import fastpath, normalise
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
    "Ada@Example.COM", "a--b@example.com", "a@EX--AMPLE.COM", "a@XN--BCHER-KVA.COM",
    "a@X.LOCAL", "a@LOCALHOST", "a@EXAMPLE.CON", "a@GMAIL.COM.COM", "a@\u212aelvin.com",
    "a@" + "b" * 32 + ".com", "a@" + "b" * 33 + ".com", "a@" + "B" * 63 + ".com",
    "a@" + "b-" * 31 + "b.com", "a@" + "b-" * 32 + "b.com", "A@B.CO", "a@b.COM", "a@B.com",
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


def test_country_codes_are_prefix_free() -> None:
    """The phone regexes have an alternative a country code, and a number must only ever match
    that of its own code."""
    codes = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
    assert not [(a, b) for a, b in itertools.permutations(codes, 2) if b.startswith(a)]


def mixed_phones(seed: int = 3) -> list[str | None]:
    """Several country codes, domestic shapes, invalid values and nulls in one batch."""
    rng = random.Random(seed)
    values: list[str | None] = [
        *rng.sample(international_examples(), 1500), *random_phones(1500, seed),
        None, None, "", "1234", "555-12", "abc", "+", "+1", "++44 20 7946 0018",
        "+44 20 7946 0018 ext 1", " (212) 555-0123", "(212) 555-0123 ", "12125550123",
        "1 (212) 555-0123", "1-212-555-0123", "1.212.555.0123", "(212)555-0123",
        "+1 212 555 0123", "+12125550123", "+1 112 555 0123", "+1 012 555 0123",
        "+7 495 123 4567", "+7 701 123 4567", "+47 2212 3456", "+358 41 234 5678",
        "+212 650 123456", "+599 9 461 2345", "+49 30 123456", "+33 1 23 45 67 89",
        "(٢١٢) 555-0123", "+４４ 20 7946 0018",
    ]  # fmt: skip
    rng.shuffle(values)
    return values


@pytest.mark.parametrize("region", ["US", "GB", None])
def test_a_mixed_batch_gets_its_values_answers_and_the_librarys(region: str | None) -> None:
    values = mixed_phones()
    fast = fast_phones(pl.Series(values, dtype=pl.String), region).to_list()
    alone = [fast_phones(pl.Series([v], dtype=pl.String), region)[0] for v in values[:150]]
    assert fast[:150] == alone  # and a value's answer does not depend on its neighbours:
    assert fast_phones(pl.Series(values[::-1], dtype=pl.String), region).to_list() == fast[::-1]
    accepted = [(v, f) for v, f in zip(values, fast, strict=True) if f is not None]
    assert len({f[:3] for _, f in accepted}) > 20  # many country codes took the fast path
    for phone, normalised in accepted:
        assert phone is not None
        assert judge_phone(phone, region) == (normalised, None), phone


def test_numbers_a_region_does_not_claim_are_left_to_the_library() -> None:
    """The first region of +7, +47, +212, +290, +358 and +599 claims numbers by their first
    digits; whatever the fast path takes of every start, the library agrees with."""
    values, unclaimed = [], []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        metadata = PhoneMetadata.metadata_for_region(regions[0])
        if metadata is None or not metadata.leading_digits:
            continue
        for start, length in itertools.product(range(100), range(4, 13)):
            national = f"{start:02d}" + "1234567890"[: length - 2]
            values.append(f"+{code} {national}")
            if not re.match(metadata.leading_digits, national):
                unclaimed.append(len(values) - 1)
    fast = fast_phones(pl.Series(values), "US").to_list()
    assert unclaimed and all(fast[i] is None for i in unclaimed)
    accepted = [(v, f) for v, f in zip(values, fast, strict=True) if f is not None]
    assert accepted
    for phone, normalised in accepted:
        assert judge_phone(phone, "US") == (normalised, None), phone


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?:0|[2-9]\d{3})\d{4}", r"800\d{5}(?:\d{3})?", r"8(?:00\d{7}(?:\d{2,3})?|11\d{7})",
        r"(?:1[2-8]|2[2-69])(?:[02-9]\d{6}|1(?:[0-8]\d{5}|9\d{3}(?:\d{2})?))", r"4\d{5}(?:\d{2})?",
        r"(?:[26]\d\d|9)\d{9}", r"8(?:\d{2})+", r"1(?:2|3)?",
    ],
)  # fmt: skip
def test_split_alternatives_match_what_the_pattern_matches(pattern: str) -> None:
    rng = random.Random(pattern)
    pieces = fastpath._split(pattern) or [pattern]
    assert fastpath._split(r"8(?:\d{2})+") == []  # a repeated group is not split
    for text in (
        "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 16)))
        for _ in range(20_000)
    ):
        assert bool(re.fullmatch(pattern, text)) == any(re.fullmatch(p, text) for p in pieces)


def test_what_the_phone_patterns_keep_is_within_the_possible_lengths() -> None:
    """A number type's pattern keeps what matches only possible lengths, and nothing more."""
    checked = 0
    for regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.values():
        metadata = PhoneMetadata.metadata_for_region(regions[0])
        if metadata is None:  # a non-geographic code
            continue
        for desc in (metadata.general_desc, metadata.fixed_line):
            kept = fastpath._within_lengths(desc)
            if kept is None or desc is None or not desc.possible_length:
                continue
            assert desc.national_number_pattern is not None
            rng, checked = random.Random(kept), checked + 1
            for length in range(1, 18):
                for _ in range(40):
                    text = "".join(rng.choice("0123456789") for _ in range(length))
                    if re.fullmatch(kept, text):
                        assert length in desc.possible_length, (kept, text)
                        assert re.fullmatch(desc.national_number_pattern, text), (kept, text)
    assert checked > 200


def test_a_mixed_email_batch_gets_its_values_answers() -> None:
    values: list[str | None] = [*EMAILS, None, "", "x@y", "Ada.LOVELACE@EXAMPLE.COM"] * 3
    random.Random(5).shuffle(values)
    fast = fast_emails(pl.Series(values, dtype=pl.String)).to_list()
    assert fast == [fast_emails(pl.Series([v], dtype=pl.String))[0] for v in values]
    assert fast_emails(pl.Series(["Ada@Example.COM", "a@" + "b" * 40 + ".com"])).to_list() == [
        "Ada@example.com", "a@" + "b" * 40 + ".com"
    ]  # fmt: skip


def dotless_addresses(seed: int = 9) -> list[str]:
    """Addresses whose domain has no period, of every shape the judge's shortcut takes, and a
    few just outside it."""
    rng = random.Random(seed)
    chars, label_chars = "aZ09_%+-.", "aZ09-"
    values = [
        "ada@mail", "a@b", "A.B@MAIL", "a@123", "a@localhost", "a@LOCAL", "a@test", "a@ab--cd",
        "a--b@mail", "x" * 64 + "@mail", "x" * 65 + "@mail", "a@" + "b" * 63, "a@" + "b" * 64,
        "a@-b", "a@b-", ".a@b", "a.@b", "a..b@c", "a@b@c", "a b@c", "a@b\n",
    ]  # fmt: skip
    for _ in range(3000):
        local = "".join(rng.choice(chars) for _ in range(rng.choice([1, 2, 5, 20, 64])))
        label = "".join(rng.choice(label_chars) for _ in range(rng.choice([1, 2, 3, 10, 63])))
        values.append(f"{local}@{label}")
    return values


def test_the_judges_complaint_about_a_dotless_domain_is_the_librarys() -> None:
    values = dotless_addresses()
    shortcut = [v for v in values if normalise._dotless_domain_complaint(v) is not None]
    assert len(shortcut) > 500
    for value in values:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            expected = f"{value!r} is not a valid email address ({str(exc).rstrip('.')})"
            assert judge_email(value) == (None, expected), value
        else:
            assert judge_email(value)[1] is None or "misspelt" in str(judge_email(value)[1])
