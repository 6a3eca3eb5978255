"""One ACME order (RFC 8555) with HTTP-01, run with certbot's `acme` library.

The library is synchronous (requests), so `issue` runs in a worker thread; the challenge
answers it publishes are read by the HTTP route `/.well-known/acme-challenge/{token}` on the
event loop (a dict read is safe across threads).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import josepy as jose
from acme import challenges, client, errors, messages
from acme import crypto_util as acme_crypto
from cryptography.hazmat.primitives import serialization

USER_AGENT = "strom"
ORDER_SECONDS = 90  # how long one order may take, validation included
NETWORK_TIMEOUT = 15  # per request to the ACME server


class AcmeError(Exception):
    """The ACME server refused, failed or answered something unusable; the message says what."""


def issue(*, directory_url: str, email: str, domains: list[str], account_key_pem: bytes,
          cert_key_pem: bytes, answers: dict[str, str], ca_bundle: str = "") -> str:
    """Order a certificate for `domains`; returns the PEM chain.

    `answers` is filled with token → key authorization while the ACME server validates, and
    emptied again afterwards. `ca_bundle` trusts another CA for the ACME server itself (a
    test CA such as Pebble's); empty = the system trust store.
    """
    try:
        return _issue(directory_url, email, domains, account_key_pem, cert_key_pem, answers,
                      ca_bundle)
    except AcmeError:
        raise
    except messages.Error as exc:  # a problem document (RFC 7807) from the server
        raise AcmeError(f"the ACME server refused: {exc.typ} {exc.detail or ''}".strip()) from exc
    except errors.Error as exc:
        raise AcmeError(f"ACME failed: {type(exc).__name__}: {exc}") from exc
    except (OSError, ValueError) as exc:  # network errors, garbage instead of JSON
        raise AcmeError(f"cannot talk to the ACME server: {type(exc).__name__}: {exc}") from exc
    finally:
        answers.clear()


def _issue(directory_url: str, email: str, domains: list[str], account_key_pem: bytes,
           cert_key_pem: bytes, answers: dict[str, str], ca_bundle: str) -> str:
    key = serialization.load_pem_private_key(account_key_pem, password=None)
    account_key = jose.JWKEC(key=key)
    net = client.ClientNetwork(account_key, alg=jose.ES256, user_agent=USER_AGENT,
                               # acme annotates bool, but hands it to requests' `verify`,
                               # which also takes a CA bundle path (pebble's CA in the tests)
                               verify_ssl=ca_bundle or True,  # type: ignore[arg-type]
                               timeout=NETWORK_TIMEOUT)
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(
        email=email or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # the key has an account already: use it
        acme.net.account = messages.RegistrationResource(uri=exc.location, body=registration)
    order = acme.new_order(acme_crypto.make_csr(cert_key_pem, domains))
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        http01 = next((c for c in authz.body.challenges
                       if isinstance(c.chall, challenges.HTTP01)), None)
        if http01 is None:
            raise AcmeError(f"the ACME server offers no http-01 challenge for "
                            f"{authz.body.identifier.value}")
        response, validation = http01.response_and_validation(account_key)
        answers[http01.chall.encode("token")] = validation
        acme.answer_challenge(http01, response)
    deadline = datetime.now() + timedelta(seconds=ORDER_SECONDS)
    try:
        done = acme.poll_and_finalize(order, deadline=deadline)
    except errors.ValidationError as exc:
        reasons = "; ".join(
            f"{a.body.identifier.value}: {c.error.detail if c.error else c.status}"
            for a in exc.failed_authzrs for c in a.body.challenges if c.error)
        raise AcmeError(f"the ACME server could not validate: {reasons}") from exc
    if not done.fullchain_pem:
        raise AcmeError("the ACME server sent no certificate")
    return done.fullchain_pem
