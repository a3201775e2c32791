"""The web page in a real headless Chromium: upload a photo, see the skeletons and the person count.

Needs Debian's `chromium` and `chromium-driver` (`./dev test` installs them when it can) and Selenium;
Selenium is pointed at those binaries, so it never downloads a browser.
"""

from __future__ import annotations

import base64
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from grapepose.visualize import MIN_JOINT_SCORE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="Chromium is not installed and could not be (apt-get install chromium chromium-driver)",
)

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600")  # fmt: skip


@pytest.fixture
def live_url(estimator):
    """The app served by uvicorn on a free loopback port, in a background thread."""
    from grapepose.serve import ServeSettings, create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(estimator, ServeSettings(), "tiny"), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    # A synthetic camera (Chromium's test pattern) answers getUserMedia without asking.
    for flag in FLAGS + ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_upload_draws_skeletons_and_counts_people(live_url, browser, estimator, photo: Path, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    poses = estimator(photo)
    expected = int((poses.scores >= 0.1).sum())
    assert expected > 0
    browser.get(live_url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "keypoints" in d.find_element(By.ID, "model").text)  # /v1/model loaded
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block';", upload)  # the label hides it
    upload.send_keys(str(photo))
    canvas = browser.find_element(By.ID, "canvas")
    wait.until(lambda d: canvas.get_attribute("data-state") in ("drawn", "error"))
    assert browser.find_element(By.ID, "status").text == ""
    assert canvas.get_attribute("data-state") == "drawn"
    assert browser.find_element(By.ID, "count").text == str(expected)
    assert browser.find_element(By.ID, "latency").text.endswith(" ms)")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("950", "950")
    # The canvas shows the photo with the people drawn on it at the keypoints of the JSON.
    url = browser.execute_script("return arguments[0].toDataURL('image/png');", canvas)
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    diff = np.abs(drawn.astype(int) - cv2.imread(str(photo)).astype(int)).max(-1)
    assert np.median(diff) < 10  # the photo is underneath (browser and OpenCV JPEG decoders differ slightly)
    kept = poses[poses.scores >= 0.1]
    # joints the page shows at the slider's default
    shown = np.isfinite(kept.keypoints[..., :2]).all(-1) & (kept.joint_scores >= MIN_JOINT_SCORE)
    xy = kept.keypoints[..., :2][shown].round().astype(int)
    xy = xy[(xy >= 0).all(-1) & (xy < 950).all(-1)]
    assert (diff[xy[:, 1], xy[:, 0]] > 40).mean() > 0.8  # a joint is drawn on (nearly) every shown keypoint
    browser.save_screenshot(str(tmp_path / "page.png"))  # for a person to look at when it fails


def test_webcam_frames_are_sent_one_after_another(live_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "keypoints" in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "webcam").click()
    canvas = browser.find_element(By.ID, "canvas")
    wait.until(lambda d: canvas.get_attribute("data-state") == "drawn")
    sent = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/poses')).length;"
    wait.until(lambda d: d.execute_script(sent) >= 3)  # the next frame goes when the last answer is drawn
    assert browser.find_element(By.ID, "webcam").text == "Stop webcam"
    assert browser.find_element(By.ID, "count").text.isdigit()
    assert browser.find_element(By.ID, "status").text == ""
    assert int(canvas.get_attribute("width")) > 0 and int(canvas.get_attribute("height")) > 0
    browser.find_element(By.ID, "webcam").click()
    assert browser.find_element(By.ID, "webcam").text == "Start webcam"
