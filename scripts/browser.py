"""What the browser tests share: a fresh local server, headless Chromium (Debian's) driven by
selenium, the requests the browser sent (read from its performance log), and the check that
every one of them stayed on the server. Used by console-test.py and api-docs-test.py.
"""
import json, os, re, socket, subprocess, sys, tempfile, time
from urllib.parse import urlparse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The local server on a free port with a fresh data folder; its log goes to LOG_DIR/NAME."""

    def __init__(self, binary, work, log_dir, log_name, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, log_name)
        env = dict(os.environ, ATTACHMENTS_DATA_DIR=os.path.join(work, "data"),
                   ATTACHMENTS_ADDR=f"127.0.0.1:{self.port}", **(env or {}))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            text = open(self.log_path).read()
            if "listening on" in text:
                break
            if self.proc.poll() is not None:
                sys.exit(f"the server stopped:\n{text}")
            time.sleep(0.1)
        m = re.search(r"ak_[0-9a-f]+", open(self.log_path).read())
        if not m:
            sys.exit("the server printed no key")
        self.key = m.group(0)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def browser(window="1280,1150"):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=" + window, "--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-")):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


class Network:
    """The requests the browser sent, from Chromium's performance log (read as it fills)."""

    def __init__(self, driver):
        self.driver = driver
        self.requests = []

    def read(self):
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                r = msg["params"]["request"]
                self.requests.append((r["method"], r["url"]))
        return self.requests


def wait(driver, what, cond, timeout=60):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: cond())
    except TimeoutException:
        sys.exit(f"timed out waiting for {what}")


def check(ok, what):
    if not ok:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def check_all_local(net, server):
    """Nothing left the machine: every request went to this server (or was a data: URL).
    Chromium's own pages (the first tab's chrome://new-tab-page) are not the network."""
    urls = [u for _, u in net.read()]
    network = [u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss", "ftp")]
    local = [u for u in urls if urlparse(u).scheme in ("data", "blob", "about", "chrome", "chrome-untrusted")]
    elsewhere = sorted({u for u in network if not u.startswith(server.base + "/")})
    unknown = sorted(set(urls) - set(network) - set(local))
    check(network and not elsewhere and not unknown,
          f"all {len(network)} network requests went to {server.base} ({elsewhere[:5]} {unknown[:5]})")


def script_errors(driver):
    """Errors in the browser's console other than the network's (the API's 4xx answers are
    logged as network errors): script errors, and Content-Security-Policy violations."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]


def save_failure(driver, log_dir, name):
    """A failed test's last screen and page source, kept in the log folder as NAME-failure.*."""
    driver.save_screenshot(os.path.join(log_dir, f"{name}-failure.png"))
    with open(os.path.join(log_dir, f"{name}-failure.html"), "w") as f:
        f.write(driver.page_source)
