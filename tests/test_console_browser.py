"""The console in a real browser: Debian's Chromium driven by Selenium through chromedriver.

Against a real relay (``python -m relay run``), a real Redis and the simulator (both as
subprocesses, because Selenium's calls block): sign in, see the districts, watch a district
join (the relay is restarted with one more static district: this branch has no discovery),
dead-letter an event on purpose (a section whose teacher Clever does not know yet), create the
teacher, replay the section from the console and see it on ``legacy:sections``, purge another.

With ``CONSOLE_SCREENSHOTS=docs`` it saves the PNGs docs/console.md shows; a normal run writes
nothing into the tree. Skipped, with the reason, where Chromium or chromedriver is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from tests.redis_server import free_port
from tests.sim import object_id, start_simulator_process, user

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.redis_server import RedisServer

HAVE_SELENIUM = True
try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - selenium is a dev dependency
    HAVE_SELENIUM = False

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not HAVE_SELENIUM or CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver) "
        "and selenium (pip install -e '.[dev]')",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "browser-console-token-0001-0123456789abcdef"
WAIT_S = 60.0
DISTRICT_A = "6a0000000000000000000a01"
DISTRICT_B = "6a0000000000000000000b02"
TEACHER = object_id(0x7E, 0x6A000000)
SECTION = object_id(0x5E, 0x6A000000)


def shoot(driver: Any, name: str) -> None:
    """Save a screenshot into $CONSOLE_SCREENSHOTS (docs/ when regenerating the docs)."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        driver.save_screenshot(str(ROOT / folder / f"console-{name}.png"))


def post_events(sim_url: str, district: str, events: list[dict[str, Any]]) -> None:
    """Append events to a simulator district's feed."""
    body = json.dumps({"district": district, "events": events}).encode()
    request = urllib.request.Request(
        f"{sim_url}/_sim/events", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


class Relay:
    """``python -m relay run`` on a config written for this test; restartable."""

    def __init__(self, tmp: Path, redis_url: str, sim_url: str) -> None:
        self.tmp, self.redis_url, self.sim_url = tmp, redis_url, sim_url
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, districts: list[str]) -> None:
        """Write the config for ``districts`` and start the relay."""
        lines = [
            '[relay]\ncomponents = ["poller", "translator", "http"]\ninstance = "replica-1"',
            f'[clever]\nbase_url = "{self.sim_url}"\npoll_interval_s = 0.2',
            f'[redis]\nurl = "{self.redis_url}"\nprefix = "web"\nhealth_check_interval_s = 1',
            f'[http]\nhost = "127.0.0.1"\nport = {self.port}\nconsole_token_env = "CONSOLE_TOKEN"',
            '[log]\nlevel = "info"',
            '[[webhooks.endpoints]]\nname = "roster-sync"\nurl = "https://hooks.example/clever"\n'
            'topics = ["sections.*"]\nsecret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Ng=="',
        ]
        for district in districts:
            lines.append(
                f'[[clever.districts]]\nid = "{district}"\ntoken = "sim_{district}"\n'
                'start = "earliest"'
            )
        path = self.tmp / "relay.toml"
        path.write_text("\n".join(lines) + "\n")
        with (self.tmp / "relay.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CONSOLE_TOKEN": TOKEN},
            )

    def stop(self) -> None:
        """SIGTERM and wait (the relay drains and exits)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    @property
    def url(self) -> str:
        """The console's base URL."""
        return f"http://127.0.0.1:{self.port}/console"


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Relay, str]]:
    """The simulator with two districts (one student each) and a relay polling the first."""
    students = {
        d: [{"type": "users.created", "data": {"object": user(district=d)}}]
        for d in (DISTRICT_A, DISTRICT_B)
    }
    scenario = {"districts": [{"id": d, "events": e} for d, e in students.items()]}
    (tmp_path / "world.json").write_text(json.dumps(scenario))
    sim, sim_url = start_simulator_process(["--events-file", str(tmp_path / "world.json")])
    relay = Relay(tmp_path, redis_server.url, sim_url)
    relay.start([DISTRICT_A])
    try:
        yield relay, sim_url
    finally:
        relay.stop()
        sim.terminate()
        sim.communicate(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) through chromedriver, no browser download."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--disable-gpu",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: Any, condition: Callable[[], Any], *, reload: str | None = None) -> Any:
    """Wait (generously) for ``condition`` to be truthy, loading ``reload`` before each try."""

    def check(_: Any) -> Any:
        if reload is not None:
            driver.get(reload)
        return condition()

    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.5, ignored_exceptions=(WebDriverException,)
    )
    return wait.until(check)


def rows(driver: Any, table: str) -> list[str]:
    """The text of each body row of a table."""
    return [r.text for r in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")]


def test_console_end_to_end_in_chromium(stack: tuple[Relay, str], browser: Any) -> None:
    """Sign in, see and watch districts, replay a dead letter to its legacy stream, purge one."""
    relay, sim_url = stack
    store = redis.Redis.from_url(relay.redis_url, decode_responses=True)
    until(browser, lambda: _get(browser, f"{relay.url}/login"))
    shoot(browser, "login")
    browser.find_element(By.ID, "who").send_keys("ada")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    until(browser, lambda: browser.current_url == f"{relay.url}/fleet")
    until(
        browser, lambda: "polling" in " ".join(rows(browser, "fleet")), reload=browser.current_url
    )
    assert [r.split(" ")[:3] for r in rows(browser, "fleet")] == [[DISTRICT_A, "static", "polling"]]

    relay.stop()
    relay.start([DISTRICT_A, DISTRICT_B])
    until(
        browser,
        lambda: " ".join(rows(browser, "fleet")).count("polling") == 2,
        reload=f"{relay.url}/fleet",
    )
    assert [r.split(" ")[:3] for r in rows(browser, "fleet")] == [
        [DISTRICT_A, "static", "polling"],
        [DISTRICT_B, "static", "polling"],
    ]
    assert "replica-1" in rows(browser, "fleet")[1]
    shoot(browser, "fleet")

    # On purpose: a section naming a teacher Clever does not know yet is dead-lettered.
    section = {
        "id": SECTION,
        "district": DISTRICT_A,
        "name": "Algebra",
        "school": "sch1",
        "teacher": TEACHER,
        "teachers": [TEACHER],
        "students": [],
    }
    post_events(sim_url, DISTRICT_A, [{"type": "sections.created", "data": {"object": section}}])
    until(browser, lambda: store.xlen("web:deadletter") == 1)
    store.xadd(
        "web:deadletter",
        {
            "stage": "poller",
            "reason": "invalid_event",
            "district": DISTRICT_B,
            "raw": '{"oops": true}',
            "id": "",
        },
    )
    teacher = user(
        TEACHER,
        district=DISTRICT_A,
        first="Grace",
        last="Hopper",
        roles={"teacher": {"legacy_id": "t-legacy-1", "school": "sch1", "schools": ["sch1"]}},
    )
    post_events(sim_url, DISTRICT_A, [{"type": "users.created", "data": {"object": teacher}}])
    until(browser, lambda: store.xlen("web:legacy:teachers") == 1)

    browser.find_element(By.ID, "nav-deadletters").click()
    until(browser, lambda: len(rows(browser, "letters")) == 2)
    letters = rows(browser, "letters")
    assert ["teacher_not_found" in letters[0], "invalid_event" in letters[1]] == [True, True]
    browser.find_element(By.CSS_SELECTOR, "#letters tbody tr:first-child details summary").click()
    shoot(browser, "deadletters")
    browser.find_element(
        By.CSS_SELECTOR, "#letters tbody tr:first-child button[value^=replay]"
    ).click()
    until(browser, lambda: text(browser, "h1") == "Confirm: replay 1 dead letter(s)")
    shoot(browser, "confirm")
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda: text(browser, "#done") == "1 dead letter(s) replayed")
    until(browser, lambda: store.xlen("web:legacy:sections") == 1)
    sections: Any = store.xrange("web:legacy:sections")
    [(_, fields)] = sections
    assert (fields["type"], json.loads(fields["data"])["data"]["object"]["id"]) == (
        "sections.created",
        SECTION,
    )

    browser.find_element(
        By.CSS_SELECTOR, "#letters tbody tr:first-child button[value^=purge]"
    ).click()
    until(browser, lambda: text(browser, "h1") == "Confirm: purge 1 dead letter(s)")
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda: text(browser, "#done") == "1 dead letter(s) purged")
    assert (store.xlen("web:deadletter"), rows(browser, "letters")) == (
        0,
        ["No dead letters here."],
    )

    store.hset(
        "web:webhooks:state:roster-sync",
        mapping={"disabled": "410 Gone", "disabled_at": str(time.time())},
    )
    browser.get(f"{relay.url}/webhooks")
    assert "disabled" in rows(browser, "endpoints")[0]
    shoot(browser, "webhooks")
    browser.find_element(By.CSS_SELECTOR, "#endpoints button").click()
    until(browser, lambda: text(browser, "#done") == "roster-sync enabled")
    assert (
        "enabled" in rows(browser, "endpoints")[0],
        store.exists("web:webhooks:state:roster-sync"),
    ) == (True, 0)

    browser.set_window_size(1280, 1250)
    browser.get(f"{relay.url}/pipeline")
    until(browser, lambda: "noeviction" in browser.find_element(By.ID, "redis").text)
    browser.get(f"{relay.url}/pipeline")  # the second view shows rates
    until(browser, lambda: rows(browser, "streams")[0].split(" ")[:3] == ["web:events", "5", "0.0"])
    shoot(browser, "pipeline")
    store.close()


def text(driver: Any, selector: str) -> str:
    """The text of the first element matching ``selector`` ("" when there is none yet)."""
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return str(found[0].text) if found else ""


def _get(driver: Any, url: str) -> bool:
    """Load ``url``; False while the relay is not answering yet."""
    driver.get(url)
    return bool(driver.find_elements(By.ID, "sign-in"))
