"""`strom site` as an operator scripts it: define a site, put chargers in it, read it back."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli_basics import strom


def test_site_set_add_list_remove(tmp_path: Path) -> None:
    d = tmp_path / "data"
    assert strom("cp", "add", "cp-1", "--lat", "48.1", "--lon", "11.5", data_dir=d).returncode == 0
    made = strom("site", "set", "home", "--limit-w", "22000", data_dir=d)
    assert made.returncode == 0, made.stderr
    joined = strom("site", "add-charger", "home", "cp-1", "--max-w", "11000", data_dir=d)
    assert joined.returncode == 0, joined.stderr
    listed = json.loads(strom("site", "list", "--json", data_dir=d).stdout)
    assert listed == [{"id": "home", "name": "home", "limit_w": 22000, "min_w": 1380,
                       "chargers": [{"cp_id": "cp-1", "max_w": 11000}]}]
    for args, message in [
        (["site", "set", "home", "--limit-w", "1000"], "--min-w 1380 is more than --limit-w"),
        (["site", "add-charger", "home", "nope"], "no charge point 'nope'"),
        (["site", "add-charger", "away", "cp-1"], "no site 'away'"),
        (["site", "remove-charger", "home", "nope"], "'nope' is not in site 'home'"),
    ]:
        refused = strom(*args, data_dir=d)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert strom("site", "remove-charger", "home", "cp-1", data_dir=d).returncode == 0
    assert strom("site", "remove", "home", data_dir=d).returncode == 0
    assert "no sites" in strom("site", "list", data_dir=d).stdout
