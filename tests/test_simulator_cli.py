"""``clever-relay simulate`` as a process: flags, the announcement line, auth, shutdown."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.sim import DISTRICT, start_simulator_process, user_created


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class TestSimulateCommand:
    def test_simulate_serves_generated_districts_and_stops_on_sigterm(self) -> None:
        """The process announces its URL and tokens, serves each district, exits 0 on SIGTERM."""
        proc, base_url = start_simulator_process(
            ["--seed", "1", "--districts", "2", "--events", "200"]
        )
        try:
            with urllib.request.urlopen(f"{base_url}/_sim/districts", timeout=5) as resp:
                districts = json.loads(resp.read())
            status, body = _get(f"{base_url}/v3.0/events?limit=1000", districts[1]["token"])
            bad, _ = _get(f"{base_url}/v3.0/events", "wrong")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert [d["events"] for d in districts] == [200, 200]
        assert [d["token"] for d in districts] == [f"sim_{d['id']}" for d in districts]
        assert (status, len(json.loads(body)["data"]), bad) == (200, 200, 401)
        line = out.decode().strip().splitlines()[-1]
        assert (
            line
            == f"simulate: {base_url} "
            + " ".join(f"district={d['id']} token={d['token']}" for d in districts)
            + " client_id=sim_client_id client_secret=sim_client_secret"
        )

    def test_simulate_serves_an_events_file(self, tmp_path: Path) -> None:
        """--events-file serves exactly the scenario's events."""
        scenario: dict[str, Any] = {
            "districts": [{"id": DISTRICT, "token": "t0ken", "events": [user_created()]}]
        }
        path = tmp_path / "scenario.json"
        path.write_text(json.dumps(scenario))
        proc, base_url = start_simulator_process(["--events-file", str(path)])
        try:
            status, body = _get(f"{base_url}/v3.0/events", "t0ken")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
        served = json.loads(body)["data"]
        assert (status, proc.returncode, len(served)) == (200, 0, 1)
        assert served[0]["data"]["data"] == scenario["districts"][0]["events"][0]["data"]
