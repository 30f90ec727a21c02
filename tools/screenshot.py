"""Screenshots of the web page for the README, taken from ``housebus demo`` in headless Chromium.

Run with ``make screenshot`` (after ``make install``; needs Debian's chromium and chromium-driver).
It starts the demo, waits until the simulated devices have all reported, and writes
``docs/web-devices.png`` and ``docs/web-device.png``.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
DEVICES = 8  # rows the demo's simulators fill


def main() -> int:
    demo = subprocess.Popen([sys.executable, "-m", "gateway", "demo", "--duration", "120"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert demo.stdout is not None
    url = None
    for line in demo.stdout:
        found = re.search(r"web page will be at (http://\S+/)", line)
        if found:
            url = found.group(1)
            break
    if url is None:
        print("the demo did not print the web page's address", file=sys.stderr)
        return 1
    threading.Thread(target=lambda: [None for _ in demo.stdout or ()], daemon=True).start()  # keep the pipe drained
    profile = tempfile.mkdtemp(prefix="housebus-shot-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,760", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        # Every simulated device heard, and the LED strip switched on by the PIR.
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#devices td.ago')].filter((c) => c.textContent !== 'never').length")
            >= DEVICES)
        driver.save_screenshot(str(ROOT / "docs" / "web-devices.png"))
        driver.get(url + "#/device/" + quote("housebus/rfxtrx/wall_switch", safe=""))
        wait.until(lambda d: d.find_element(By.ID, "device-command").is_displayed()
                   and d.find_element(By.ID, "device-history").text)
        driver.save_screenshot(str(ROOT / "docs" / "web-device.png"))
        print("wrote docs/web-devices.png and docs/web-device.png")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        demo.send_signal(signal.SIGINT)
        demo.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
