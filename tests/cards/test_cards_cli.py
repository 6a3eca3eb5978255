"""`strom cards` and `strom accounts` as an operator scripts them: one line per answer, exit 1
with one line for bad input; a running server sends a card added from the shell to the
chargers' lists within its poll interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strom.app import StromApp
from strom.cards import local_list
from strom.cards.registry import CardRegistry
from strom.paths import database_path
from strom.store.cards import CardRepository
from strom.store.db import Database
from tests.api.charger import running_charger
from tests.cards.charger import CardCharger
from tests.conftest import free_settings
from tests.e2e.test_cli_basics import strom
from tests.polling import eventually


def test_cards_and_accounts_from_the_shell(tmp_path: Path) -> None:
    d = tmp_path / "data"
    assert strom("accounts", "add", "fleet", "--balance-sat", "500", data_dir=d).returncode == 0
    added = strom("cards", "add", "VAN-1", "--account", "fleet", "--label", "van", data_dir=d)
    assert added.returncode == 0 and "local list version 1" in added.stdout, added.stderr
    assert strom("cards", "add", "HOME-1", "--free", data_dir=d).returncode == 0
    listed = json.loads(strom("cards", "list", "--json", data_dir=d).stdout)
    assert [(c["id_tag"], c["rule"], c["account"]) for c in listed] == [
        ("HOME-1", "free", None), ("VAN-1", "account", "fleet")]
    topped = strom("accounts", "topup", "fleet", "250", data_dir=d)
    assert topped.stdout.strip() == "account fleet: balance 750 sat"
    assert strom("cards", "remove", "HOME-1", data_dir=d).returncode == 0
    checked = strom("ledger", "check", data_dir=d)
    assert checked.returncode == 0 and "ledger OK" in checked.stdout
    for args, words in (
            (["cards", "add", "van-1", "--free"], "registered already"),
            (["cards", "add", "A" * 21, "--free"], "at most 20"),
            (["cards", "add", "X-1", "--account", "nope"], "unknown account"),
            (["cards", "remove", "HOME-1"], "unknown card"),
            (["accounts", "withdraw", "fleet", "751"], "cannot be taken"),
            (["accounts", "add", "fleet"], "exists already")):
        result = strom(*args, data_dir=d)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("strom: error:") and words in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


async def test_a_card_added_by_another_process_reaches_the_chargers(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_list, "POLL_SECONDS", 0.2)
    async with StromApp(free_settings(), data_dir) as app:
        await app.services.charge_points.add("cp-1", name="Yard", lat=1.0, lon=2.0)
        assert app.services.central_system is not None
        async with running_charger(app.services.central_system.url, "cp-1",
                                   charger_class=CardCharger) as charger:
            # As `strom cards add` does: its own connection to the store.
            shell = await Database.open(database_path(data_dir))
            try:
                await CardRegistry(CardRepository(shell)).add_card("SHELL-1", "free")
            finally:
                await shell.close()
            await eventually(lambda: _list(charger), lambda v: v == {"SHELL-1": "Accepted"})


async def _list(charger: CardCharger) -> dict[str, str]:
    return charger.local_list
