"""Phone, email and name normalisation (pure)."""
from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_core.errors import InvalidEmail, InvalidPhone
from crm_core.normalize import (
    lookup_phone,
    name_key,
    name_tokens,
    normalize_email,
    normalize_phone,
    prefix_upper_bound,
)

FORMATS = [
    ("(202) 555-0143", "US", "+12025550143"),
    ("202-555-0143", "US", "+12025550143"),
    ("202.555.0143", "US", "+12025550143"),
    ("2025550143", "US", "+12025550143"),
    ("1-202-555-0143", "US", "+12025550143"),
    ("+1 202-555-0143", "US", "+12025550143"),
    ("+1 (202) 555-0143", "GB", "+12025550143"),
    ("001 202 555 0143", "US", "+12025550143"),
    ("011 1 202 555 0143", "US", "+12025550143"),
    ("tel:+1-202-555-0143", "US", "+12025550143"),
    ("sip:+12025550143@pbx.example", "US", "+12025550143"),
    ("020 7946 0018", "GB", "+442079460018"),
    ("+44 20 7946 0018", "US", "+442079460018"),
    ("0044 20 7946 0018", "US", "+442079460018"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("030 123456", "DE", "+4930123456"),
]


@pytest.mark.parametrize("raw, region, e164", FORMATS)
def test_phone_formats_normalise_to_e164(raw, region, e164):
    assert normalize_phone(raw, region) == e164
    assert lookup_phone(raw, region) == e164


@pytest.mark.parametrize("raw", [
    "anonymous", "Anonymous", "<unknown>", "unknown", "", "   ", "Restricted", "PRIVATE",
    "unavailable", '"Anonymous" <sip:anonymous@anonymous.invalid>', "withheld", None,
])
def test_anonymous_caller_ids_are_no_number(raw):
    assert lookup_phone(raw, "US") is None
    with pytest.raises(InvalidPhone):
        normalize_phone(raw, "US")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["12345", "555-0143", "+1 000 000 0000", "hello", "++1"])
def test_invalid_numbers_are_refused(raw):
    with pytest.raises(InvalidPhone):
        normalize_phone(raw, "US")


def test_emails_are_lower_cased_and_validated():
    assert normalize_email("  John.Doe@Example.COM ") == "john.doe@example.com"
    for bad in ["", "john", "john@", "@example.com", "a b@example.com", "x@localhost"]:
        with pytest.raises(InvalidEmail):
            normalize_email(bad)


def test_name_keys_and_tokens():
    assert name_key("  José  O'Neil-SMITH ") == "jose o neil smith"
    assert name_tokens("José O'Neil") == ["jose", "o", "neil", "oneil"]
    assert name_tokens("Anna anna") == ["anna"]
    assert prefix_upper_bound("smi") == "smj"


US_NUMBERS = st.builds(
    lambda area, ex, line: f"+1{area}{ex}{line:04d}",
    st.sampled_from(["202", "212", "305", "415", "617", "713"]),
    st.integers(201, 999).filter(lambda x: x % 100 != 11).map(str),
    st.integers(0, 9999),
)
GB_NUMBERS = st.integers(0, 9_999_999).map(lambda n: f"+44207{n:07d}")
FMTS = st.sampled_from([phonenumbers.PhoneNumberFormat.E164,
                        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                        phonenumbers.PhoneNumberFormat.NATIONAL,
                        phonenumbers.PhoneNumberFormat.RFC3966])


@given(st.one_of(US_NUMBERS.map(lambda n: (n, "US")), GB_NUMBERS.map(lambda n: (n, "GB"))), FMTS)
def test_round_trip_through_any_format(number_region, fmt):
    e164, region = number_region
    parsed = phonenumbers.parse(e164)
    if not phonenumbers.is_valid_number(parsed):
        return
    written = phonenumbers.format_number(parsed, fmt)
    assert normalize_phone(written, region) == e164
    assert lookup_phone(written, region) == e164
    # the international forms also work from another region
    if fmt != phonenumbers.PhoneNumberFormat.NATIONAL:
        assert normalize_phone(written, "DE") == e164


@given(st.text(max_size=30))
def test_lookup_never_raises(raw):
    result = lookup_phone(raw, "US")
    assert result is None or result.startswith("+")
