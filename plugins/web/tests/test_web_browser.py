"""The page in a real headless Chromium, fed by the RFXtrx and RF12 simulators through the real broker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from gateway_rfxtrx.simulator import temp_hum_frame
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SWITCH_ON = bytes.fromhex("0b1101 0010 9b52 0b 01 0f 00".replace(" ", ""))  # wall_switch ON, less its sequence byte
EVIL = "<img src=x onerror=alert(1)>"
Site = Any  # conftest.Site: a gateway with [web] and both radios on their simulators

# The row of a device as the page shows it, found by its topic (held as data, not as a CSS selector).
ROW = """
const tr = [...document.querySelectorAll('#devices tbody tr')].find((r) => r.dataset.topic === arguments[0]);
if (!tr) return null;
const cell = (c) => tr.querySelector('td.' + c);
return {plugin: cell('plugin').textContent, name: cell('name').textContent, id: cell('id').textContent,
        ago: cell('ago').textContent, battery: cell('battery').textContent,
        low: cell('battery').classList.contains('low'),
        signal: cell('signal').textContent, values: cell('values').innerText, classes: tr.className};
"""


@pytest.fixture(scope="module")
def site(site_factory: Callable[..., Site]) -> Site:
    return site_factory(allow_commands=True, stale_after=600)


@pytest.fixture(scope="module")
def locked(site_factory: Callable[..., Site]) -> Site:
    """Read-only and behind a login."""
    return site_factory(allow_commands=False, username="admin", password="s3cret pass")


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait(driver: Any, condition: Callable[[], Any], timeout: float = 10, what: str = "the page") -> Any:
    try:
        # The page rebuilds the table as readings come in: an element read a moment ago may be gone.
        return WebDriverWait(driver, timeout, poll_frequency=0.02,
                             ignored_exceptions=[StaleElementReferenceException]).until(lambda _: condition())
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait(driver, lambda: driver.find_element(By.ID, "connection").text == "live", what="the event stream")


def device_row(driver: Any, topic: str, predicate: Callable[[dict[str, Any]], bool] = lambda r: True,
               timeout: float = 10) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        row = driver.execute_script(ROW, topic)
        return row if row is not None and predicate(row) else None

    return wait(driver, found, timeout, what=f"the row of {topic}")  # type: ignore[no-any-return]


def texts(driver: Any, selector: str, attribute: str | None = None) -> list[str]:
    """The text (or an attribute) of every element matching ``selector``, read in one go."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll(arguments[0])].map((e) => arguments[1] ? e.getAttribute(arguments[1])"
        " : e.textContent)", selector, attribute)


def device_url(site: Site, name: str) -> str:
    return site.url + "#/device/" + quote(f"{site.base}/rfxtrx/{name}", safe="")


def no_alert(driver: Any) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_the_device_table_fills_from_both_radios(browser: Any, site: Site) -> None:
    site.rfxtrx.inject(temp_hum_frame(0x7002, 21.5, 48))
    site.jeelink.room_node(3, temperature=19.5, humidity=55, light=80, battery_low=True)
    open_page(browser, site.url)
    garden = device_row(browser, f"{site.base}/rfxtrx/garden", lambda r: "21.5 °C" in r["values"])
    assert (garden["plugin"], garden["name"], garden["id"]) == ("rfxtrx", "garden", "52_02_7002")
    assert garden["battery"] == "100 %" and garden["signal"] == "8"
    assert "48 %" in garden["values"]
    assert garden["ago"] in ("just now", "1 s ago", "2 s ago")
    kitchen = device_row(browser, f"{site.base}/rf12/kitchen", lambda r: "19.5 °C" in r["values"])
    assert (kitchen["plugin"], kitchen["name"]) == ("rf12", "kitchen")
    assert kitchen["battery"] == "low" and kitchen["low"]
    assert "55 %" in kitchen["values"] and "light 80" in kitchen["values"]
    # Announced to Home Assistant but never heard: listed, greyed out, so that it can be commanded.
    switch = device_row(browser, f"{site.base}/rfxtrx/wall_switch")
    assert switch["ago"] == "never" and "stale" in switch["classes"]
    assert console_errors(browser) == []


def test_a_reading_changes_the_page_within_a_second_without_a_reload(browser: Any, site: Site) -> None:
    site.rfxtrx.inject(temp_hum_frame(0x7002, 20.0, 50, seq=1))
    open_page(browser, site.url)
    device_row(browser, f"{site.base}/rfxtrx/garden", lambda r: "20.0 °C" in r["values"])
    browser.execute_script("window.__samePage = true")
    site.rfxtrx.inject(temp_hum_frame(0x7002, 23.4, 51, seq=2))
    started = time.monotonic()
    device_row(browser, f"{site.base}/rfxtrx/garden", lambda r: "23.4 °C" in r["values"], timeout=1.0)
    print(f"\nreading on the page {1000 * (time.monotonic() - started):.0f} ms after the simulator sent it")
    assert browser.execute_script("return window.__samePage") is True
    assert console_errors(browser) == []


def test_a_command_from_the_device_form_reaches_the_stick_as_the_right_frame(browser: Any, site: Site) -> None:
    open_page(browser, device_url(site, "wall_switch"))
    wait(browser, lambda: browser.find_element(By.ID, "device-command").is_displayed(), what="the command form")
    assert browser.find_element(By.ID, "command-topic").get_attribute("value") == f"{site.base}/rfxtrx/wall_switch/set"
    examples = {b.text: b for b in browser.find_elements(By.CSS_SELECTOR, "#command-examples button")}  # not rebuilt
    assert sorted(examples) == ["OFF", "ON"]
    examples["OFF"].click()
    examples["ON"].click()
    assert browser.find_element(By.ID, "command-payload").get_attribute("value") == "ON"
    mark = site.rfxtrx.mark()
    browser.find_element(By.ID, "command-send").click()
    frame = site.rfxtrx.wait_frame(lambda f: f[1] == 0x11, after=mark)
    assert frame[:3] + frame[4:] == SWITCH_ON
    wait(browser, lambda: browser.find_element(By.ID, "command-result").text.startswith("published"))
    # The switch's new state and the command itself show in the device's view, live.
    wait(browser, lambda: '"state": "ON"' in browser.find_element(By.ID, "device-state").text, what="the state")
    history = browser.find_element(By.ID, "device-history").text
    assert f"{site.base}/rfxtrx/wall_switch/set" in history
    assert console_errors(browser) == []


def test_a_refused_command_shows_the_gateways_error(browser: Any, site: Site) -> None:
    site.rfxtrx.nak_next = 0x02
    open_page(browser, device_url(site, "wall_switch"))
    wait(browser, lambda: browser.find_element(By.ID, "device-command").is_displayed(), what="the command form")
    browser.find_element(By.ID, "command-payload").clear()
    browser.find_element(By.ID, "command-payload").send_keys("OFF")
    browser.find_element(By.ID, "command-send").click()
    result = wait(browser, lambda: (lambda t: t if "reported" in t else None)(
        browser.find_element(By.ID, "command-result").text), what="the error")
    assert "NAK" in result
    assert console_errors(browser) == []


def test_without_credentials_a_protected_page_answers_401(locked: Site) -> None:
    for path in ("", "api/events", "static/app.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(locked.url + path, timeout=5)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")


def test_read_only_page_has_no_form_and_refuses_the_post(browser: Any, locked: Site) -> None:
    login = locked.url.replace("http://", "http://admin:s3cret%20pass@")
    browser.get(login + "#/device/" + quote(f"{locked.base}/rfxtrx/wall_switch", safe=""))
    wait(browser, lambda: browser.find_element(By.ID, "connection").text == "live", what="the event stream")
    wait(browser, lambda: browser.find_element(By.ID, "device-title").text == "wall_switch", what="the device view")
    wait(browser, lambda: browser.find_element(By.ID, "device-discovery-topic").text.endswith("/config"))
    assert not browser.find_element(By.ID, "device-command").is_displayed()
    topic = f"{locked.base}/rfxtrx/wall_switch/set"
    mark, frames = locked.watch.mark(), locked.rfxtrx.mark()
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(location.origin + '/api/command', {method: 'POST', headers: {'Content-Type': 'application/json'},
                               body: JSON.stringify({topic: arguments[0], payload: 'ON'})})
          .then((r) => done(r.status), (e) => done(String(e)));
    """, topic)
    assert status == 403
    # A command of our own after it: by the time it is through, a published one would have been too.
    locked.watch.publish(topic, b"OFF")
    locked.rfxtrx.wait_frame(lambda f: f[1] == 0x11, after=frames)
    assert [m.payload for m in locked.watch.received(topic, after=mark)] == [b"OFF"]
    assert [f[9] for f in locked.rfxtrx.transmits(frames)] == [0x00]  # only the OFF went over the air
    errors = console_errors(browser)
    assert [e for e in errors if "403" not in e["message"]] == []  # the refused fetch itself is logged


def test_text_from_the_radio_is_shown_as_text_and_never_run(browser: Any, site: Site) -> None:
    topic = f"{site.base}/rfxtrx/evil"
    site.watch.publish(f"{site.topics.prefix}/device/evil/config", {
        "device": {"name": EVIL, "identifiers": [EVIL], "model": "<script>window.__pwned = 1</script>"},
        "state_topic": topic,
        "components": {"x": {"platform": "sensor", "value_template": "{{ value_json.note }}",
                             "unit_of_measurement": "<b>u</b>"}},
    })
    site.watch.publish(topic, {"note": EVIL, "id": EVIL, "<svg onload=alert(2)>": "<script>window.__pwned=1</script>"})
    open_page(browser, site.url)
    row = device_row(browser, topic)
    assert row["name"] == EVIL and row["id"] == EVIL
    assert f"note {EVIL} <b>u</b>" in row["values"]
    assert "<script>window.__pwned=1</script>" in row["values"]

    def nothing_ran() -> None:
        assert no_alert(browser)
        assert browser.execute_script("return window.__pwned") is None
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script, main svg, main b") == []

    nothing_ran()
    browser.get(site.url + "#/device/" + quote(topic, safe=""))
    wait(browser, lambda: browser.find_element(By.ID, "device-title").text == EVIL, what="the device view")
    assert EVIL in browser.find_element(By.ID, "device-state").text
    nothing_ran()
    browser.get(site.url + "#/log")
    wait(browser, lambda: EVIL in browser.find_element(By.ID, "log").text, what="the log")
    nothing_ran()
    assert console_errors(browser) == []


def test_sorting_and_greying_out_devices_not_heard_for_long(browser: Any, site: Site) -> None:
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    site.watch.publish(f"{site.base}/rfxtrx/attic", {"temperature": 5, "last_seen": old})
    site.rfxtrx.inject(temp_hum_frame(0x7002, 20.5, 50, seq=3))
    open_page(browser, site.url)
    attic = device_row(browser, f"{site.base}/rfxtrx/attic")
    assert "stale" in attic["classes"] and attic["ago"] == "2 h ago"
    garden = device_row(browser, f"{site.base}/rfxtrx/garden", lambda r: "20.5 °C" in r["values"])
    assert "stale" not in garden["classes"]

    def names() -> list[str]:
        return texts(browser, "#devices tbody td.name")

    def sorted_by_name(reverse: bool) -> bool:
        shown = names()
        return len(shown) > 1 and shown == sorted(shown, key=str.lower, reverse=reverse)

    header = browser.find_element(By.CSS_SELECTOR, "#devices th[data-key=name] button")
    header.click()
    wait(browser, lambda: texts(browser, "#devices th[data-key=name]", "aria-sort") == ["descending"])
    wait(browser, lambda: sorted_by_name(reverse=True), what="Z to A")
    header.click()
    wait(browser, lambda: sorted_by_name(reverse=False), what="A to Z")
    browser.find_element(By.CSS_SELECTOR, "#devices th[data-key=last_seen] button").click()  # newest first

    def newest_first() -> bool:
        seen = [float(t) if t != "null" else 0.0 for t in texts(browser, "#devices td.ago", "data-t")]
        return seen == sorted(seen, reverse=True) and names()[-1] == "attic"  # 0: never heard

    wait(browser, newest_first, what="newest first")
    assert console_errors(browser) == []


def test_the_bridge_view_shows_version_plugins_availability_and_queues(browser: Any, site: Site) -> None:
    open_page(browser, site.url + "#/bridge")
    wait(browser, lambda: "Version" in browser.find_element(By.ID, "bridge-facts").text, what="bridge/info")
    rows = wait(browser, lambda: (lambda r: r if len(r) >= 3 else None)(browser.execute_script(
        "return [...document.querySelectorAll('#bridge-plugins tbody tr')]"
        ".map((tr) => [...tr.cells].map((td) => td.textContent))")), what="the plugins")
    by_component = {r[2]: r for r in rows}
    for name in ("rfxtrx", "rf12", "web"):
        assert by_component[name][3] == "running"
    assert by_component["rfxtrx"][4] == "online" and by_component["rf12"][4] == "online"
    queues = set(texts(browser, "#bridge-queues tbody tr td:first-child"))
    assert {"rfxtrx", "rf12", "web"} <= queues
    wait(browser, lambda: "counters.packets" in browser.find_element(By.ID, "bridge-info").text, what="counters")
    assert console_errors(browser) == []


def test_the_live_log_filters_pauses_and_highlights_errors(browser: Any, site: Site) -> None:
    open_page(browser, site.url + "#/log")
    browser.find_element(By.ID, "log-filter").send_keys(f"{site.base}/+/kitchen")
    site.jeelink.room_node(3, temperature=17.25)
    site.rfxtrx.inject(temp_hum_frame(0x7002, 18.5, 50, seq=4))
    wait(browser, lambda: "17.2" in browser.find_element(By.ID, "log").text, what="the kitchen reading")
    assert set(texts(browser, "#log li .t")) == {f"{site.base}/rf12/kitchen"}
    browser.find_element(By.ID, "log-filter").clear()
    site.watch.publish(f"{site.base}/bridge/error", {"topic": "x", "error": "a highlighted problem"})
    error = wait(browser, lambda: next((li for li in browser.find_elements(By.CSS_SELECTOR, "#log li.error")
                                        if "a highlighted problem" in li.text), None), what="the error")
    assert error.is_displayed()
    browser.find_element(By.ID, "log-pause").click()
    site.watch.publish(f"{site.base}/rfxtrx/pause_marker", {"n": 1})
    wait(browser, lambda: browser.find_element(By.ID, "log-count").text == "paused, 1 new", what="the count")
    assert "pause_marker" not in browser.find_element(By.ID, "log").text
    browser.find_element(By.ID, "log-pause").click()
    assert "pause_marker" in browser.find_element(By.ID, "log").text
    assert console_errors(browser) == []


def test_the_page_fits_a_phone(browser: Any, site: Site) -> None:
    browser.set_window_size(390, 844)
    try:
        for view in ("#/devices", "#/bridge", "#/log", "#/device/" + quote(f"{site.base}/rfxtrx/garden", safe="")):
            open_page(browser, site.url + view)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{view} is {overflow} px wider than the phone"
    finally:
        browser.set_window_size(1280, 900)
    assert console_errors(browser) == []


def test_every_view_loads_without_console_errors(browser: Any, site: Site) -> None:
    console_errors(browser)
    for view in ("#/devices", "#/bridge", "#/log", "#/device/" + quote(f"{site.base}/rf12/kitchen", safe="")):
        open_page(browser, site.url + view)
    browser.get(site.url + "#/device/" + quote(f"{site.base}/rf12/kitchen", safe=""))
    wait(browser, lambda: browser.find_element(By.ID, "device-title").text == "kitchen", what="the device view")
    info = json.loads(urllib.request.urlopen(site.url + "api/device?topic=" + quote(f"{site.base}/rf12/kitchen"),
                                             timeout=5).read())
    assert info["row"]["name"] == "kitchen"
    assert console_errors(browser) == []
