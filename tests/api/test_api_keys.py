"""`/api/v1/keys` over real HTTP: generate, import, encrypt, rotate — and no secret out."""

from __future__ import annotations

import re
from typing import Any

import httpx
from nostr_sdk import Keys

from strom.app import StromApp
from tests.api.conftest import add


async def test_keys_generate_import_encrypt_rotate(app: StromApp, admin: httpx.AsyncClient) -> None:
    created = await add(admin)
    texts: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = await admin.request(method, path, **kwargs)
        texts.append(answer.text)
        return answer

    assert (await call("POST", "/api/v1/keys/cp-1/generate", json={})).status_code == 409
    mine = Keys.generate()
    nsec = mine.secret_key().to_bech32()
    imported = await call("POST", "/api/v1/keys/cp-1/import",
                          json={"secret": nsec, "replace": True})
    assert imported.status_code == 201, imported.text
    assert imported.json()["npub"] == mine.public_key().to_bech32() != created["npub"]
    public = (await admin.get("/api/v1/public/charge-points/cp-1")).json()
    assert public["npub"] == mine.public_key().to_bech32()

    bad = await call("POST", "/api/v1/keys/cp-1/import",
                     json={"secret": nsec[:-4] + "qqqq", "replace": True})
    assert bad.status_code == 422 and nsec[5:-4] not in bad.text

    encrypted = await call("POST", "/api/v1/keys/cp-1/encrypt",
                           json={"password": "correct horse"})
    assert encrypted.status_code == 200 and encrypted.json()["encrypted"] is True
    key_file = (app.data_dir / "nostr-keys.toml").read_text()
    assert "ncryptsec1" in key_file and nsec not in key_file
    assert (await call("POST", "/api/v1/keys/cp-1/encrypt",
                       json={"password": "correct horse"})).status_code == 409
    listed = (await call("GET", "/api/v1/keys")).json()["items"]
    assert listed[0]["npub"] == mine.public_key().to_bech32()  # known without the password

    unconfirmed = await call("POST", "/api/v1/keys/cp-1/rotate", json={})
    assert unconfirmed.status_code == 422
    assert unconfirmed.json()["fields"][0]["loc"] == ["body", "confirm"]
    no_password = await call("POST", "/api/v1/keys/cp-1/rotate", json={"confirm": True})
    assert no_password.status_code == 422 and "password" in no_password.json()["error"]
    rotated = await call("POST", "/api/v1/keys/cp-1/rotate",
                         json={"confirm": True, "password": "correct horse"})
    assert rotated.status_code == 200, rotated.text
    turned = rotated.json()
    assert turned["previous_npub"] == mine.public_key().to_bech32() != turned["npub"]
    assert turned["encrypted"] is True and "new nostr identity" in turned["warning"]

    sealed = Keys.generate()
    ncryptsec = sealed.secret_key().encrypt("other password").to_bech32()
    wrong = await call("POST", "/api/v1/keys/cp-1/import",
                       json={"secret": ncryptsec, "password": "not it", "replace": True})
    assert wrong.status_code == 422 and "wrong password" in wrong.json()["error"]
    right = await call("POST", "/api/v1/keys/cp-1/import",
                       json={"secret": ncryptsec, "password": "other password", "replace": True})
    assert right.json()["npub"] == sealed.public_key().to_bech32()
    assert (await call("POST", "/api/v1/keys/nope/generate", json={})).status_code == 404

    everything = "\n".join(texts)
    found = re.search(r"n(crypt)?sec1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{20,}", everything)
    assert not found, everything[max(0, found.start() - 200):found.end() + 50]
    for keys in (mine, sealed):
        assert keys.secret_key().to_hex() not in everything
