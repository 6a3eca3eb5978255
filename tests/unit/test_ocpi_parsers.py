"""The OCPI edges that read outsiders' input: the Authorization header and the credentials
body never raise anything but an OCPI error, whatever arrives."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from strom.ocpi.envelope import INVALID_PARAMETERS, OcpiError
from strom.ocpi.locations import evse_uid, parse_evse_uid
from strom.ocpi.parties import parse_credentials
from strom.ocpi.tokens import candidates, header_value

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@given(st.text(max_size=2000))
def test_any_authorization_header_gives_candidates_or_none(header: str) -> None:
    found = candidates(header)
    assert len(found) <= 2 and all(found)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1,
               max_size=255))
def test_a_token_is_found_base64_and_plain(token: str) -> None:
    assert token in candidates(header_value(token))  # 2.2.1
    assert token in candidates(f"Token {token}")  # 2.1.1
    assert candidates("Bearer " + base64.b64encode(token.encode()).decode()) == []


@given(JSON)
def test_any_credentials_body_is_read_or_refused_with_2001(body: object) -> None:
    try:
        parse_credentials(body)
    except OcpiError as exc:
        assert exc.status_code == INVALID_PARAMETERS and exc.message.startswith("credentials")


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}", fullmatch=True),
       st.integers(1, 999), st.text(max_size=60))
def test_evse_uids_round_trip_and_others_are_refused(cp_id: str, n: int, other: str) -> None:
    assert parse_evse_uid(evse_uid(cp_id, n)) == (cp_id, n)
    parsed = parse_evse_uid(other)
    assert parsed is None or (other.startswith(parsed[0] + "-") and 0 <= parsed[1] < 1000)
