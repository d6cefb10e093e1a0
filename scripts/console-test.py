#!/usr/bin/env python3
"""The browser console in a real browser: headless Chromium (Debian's) driven by selenium.

Against a fresh local server it uploads a small image and a 40 MB file through the file input,
sees both listed (the image with its thumbnail), reloads the page in the middle of the big
file's multipart upload and sees it resume (only the missing parts are sent) and finish, deletes
one, and saves screenshots in the log folder. Every request the browser made is read back from
its performance log: all of them went to the local server.

Usage: scripts/console-test.py SERVER_BINARY LOG_DIR [--readme-screenshot PATH]
"""
import argparse, hashlib, json, os, struct, sys, tempfile, time, zlib
import urllib.request
from urllib.parse import urlparse, parse_qs

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

import browser as web
from browser import Network, check, wait

BIG = 40_000_000
# Uploads above 1 MiB are multipart, so the big file goes in parts of 8 MiB (5 parts).
POST_MAX = 1024 * 1024
# The browser's upload bandwidth while the big file goes (Chromium's own network emulation):
# about 5 s for 40 MB, so the reload lands in the middle of it whatever the machine's speed.
THROTTLE = 8 * 1024 * 1024


def png(width, height):
    """A small valid PNG: a colour gradient (the server decodes it for the thumbnail)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Server(web.Server):
    """The local server, with the big file's upload in parts and the API called with its key."""

    def __init__(self, binary, work, log_dir):
        super().__init__(binary, work, log_dir, "console-server.log",
                         {"ATTACHMENTS_DIRECT_POST_MAX_BYTES": str(POST_MAX)})

    def call(self, method, path):
        req = urllib.request.Request(self.base + path, method=method, headers={"X-API-KEY": self.key})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def rows(driver):
    """The attachment table as the page shows it now (read in one go: the page redraws it)."""
    return {r["name"]: r for r in driver.execute_script("""
        return [...document.querySelectorAll('#attachment-rows tr')].map((tr) => {
          const img = tr.querySelector('img.thumb');
          return {name: tr.querySelector('th.name').textContent, text: tr.innerText,
                  thumb: img ? img.src : null, width: img && img.complete ? img.naturalWidth : 0};
        });""")}


def click(driver, css, tries=20):
    """Clicks an element that a redraw may replace meanwhile."""
    for _ in range(tries):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            time.sleep(0.1)
    sys.exit(f"could not click {css}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("log_dir")
    ap.add_argument("--readme-screenshot")
    args = ap.parse_args()
    os.makedirs(args.log_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="console-test-")
    image = os.path.join(work, "sunset.png")
    with open(image, "wb") as f:
        f.write(png(320, 200))
    big = os.path.join(work, "survey-video.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(BIG))
    big_sha = hashlib.sha256(open(big, "rb").read()).hexdigest()

    server = Server(args.binary, work, args.log_dir)
    driver = web.browser()
    net = Network(driver)
    t0 = time.time()
    try:
        driver.get(server.base + "/console")
        driver.find_element(By.ID, "api-key").send_keys(server.key)
        driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        driver.find_element(By.ID, "parent-kind").send_keys("project")
        driver.find_element(By.ID, "parent-id").send_keys("apollo-11")
        driver.find_element(By.CSS_SELECTOR, "#parent-form button[type=submit]").click()
        register = driver.find_element(By.ID, "register-parent")
        wait(driver, "the offer to register the parent", register.is_displayed)
        register.click()
        wait(driver, "the empty list", lambda: "apollo-11: 0" in driver.find_element(By.ID, "list-caption").text)
        check(server.call("GET", "/v1/parents/project/apollo-11")[0] == 200, "the console registered the parent")
        check(driver.execute_script("return localStorage.length ? JSON.stringify(localStorage) : ''").find(server.key) < 0,
              "the key is not in local storage")

        # One part at a time, the browser's upload throttled: the reload lands mid-way.
        parallel = driver.find_element(By.ID, "parallel")
        parallel.clear()
        parallel.send_keys("1")
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": THROTTLE})
        driver.find_element(By.ID, "file-input").send_keys(image + "\n" + big)

        def record():
            raw = driver.execute_script("return localStorage.getItem('attachments.console.uploads')")
            items = json.loads(raw or "[]")
            return items[0] if items else None
        rec = wait(driver, "the big file's multipart upload to start", record)
        big_id = rec["attachment_id"]
        check("sunset.png" in driver.find_element(By.ID, "upload-list").text, "the image is in the progress list")

        def received():
            status, body = server.call("GET", f"/v1/attachments/{big_id}/upload")
            return [p["part_number"] for p in body["upload"]["parts_received"]] if status == 200 else []
        wait(driver, "two parts of five to arrive", lambda: len(received()) >= 2, timeout=120)
        overall = driver.find_element(By.ID, "overall-progress")
        shown = float(overall.get_attribute("value")) / float(overall.get_attribute("max"))
        check(0 < shown < 1, f"the overall progress bar moved ({shown:.0%})")
        driver.save_screenshot(os.path.join(args.log_dir, "console-uploading.png"))
        driver.refresh()
        before = sorted(received())
        check(0 < len(before) < rec["part_count"], f"reloaded mid-upload: parts {before} of {rec['part_count']} stored")
        net.read()
        sent_before_reload = len(net.requests)
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

        # After the reload: the key (this tab's session) and the parent are still there, and the
        # unfinished upload asks for its file again.
        resumable = driver.find_element(By.ID, "resumable")
        wait(driver, "the unfinished upload to be offered", resumable.is_displayed)
        check("survey-video.bin" in resumable.text, "the unfinished upload is listed after the reload")
        driver.find_element(By.ID, "file-input").send_keys(big)
        line = lambda: driver.find_element(By.CSS_SELECTOR, "#upload-list li[data-file='survey-video.bin']")
        wait(driver, "the resumed upload to finish", lambda: line().get_attribute("data-state") in ("done", "refused"), timeout=120)
        check(line().get_attribute("data-state") == "done", f"the resumed upload finished: {line().text}")
        check(line().get_attribute("data-resumed") == "true", "the upload was resumed, not started again")
        puts = [parse_qs(urlparse(u).query).get("partNumber", ["?"])[0]
                for m, u in net.read()[sent_before_reload:] if m == "PUT" and "/_blobs/" in u]
        missing = [str(n) for n in range(1, rec["part_count"] + 1) if n not in before]
        check(sorted(puts, key=int) == missing, f"after the reload the browser sent only the missing parts {missing} (sent {puts})")

        wait(driver, "both files listed", lambda: {"sunset.png", "survey-video.bin"} <= rows(driver).keys())
        status, att = server.call("GET", f"/v1/attachments/{big_id}")
        check(att["status"] == "ready" and att["sha256"] == big_sha and att["size"] == BIG,
              "the big file is ready with the right sha256")
        wait(driver, "the thumbnail to load", lambda: rows(driver)["sunset.png"]["width"])
        shown = rows(driver)
        width = shown["sunset.png"]["width"]
        check("_thumb" in shown["sunset.png"]["thumb"] and 0 < width <= 256,
              f"the image shows its thumbnail ({width} px wide), not the file")
        big_row = shown["survey-video.bin"]["text"]
        check("38.1 MiB" in big_row and "application/octet-stream" in big_row and "ready" in big_row,
              f"the big file's row: {big_row!r}")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(os.path.join(args.log_dir, "console-uploaded.png"))
        if args.readme_screenshot:
            driver.save_screenshot(args.readme_screenshot)

        # Delete the image (the page asks first).
        click(driver, "button[aria-label='Delete sunset.png']")
        driver.switch_to.alert.accept()
        wait(driver, "the image to leave the list", lambda: "sunset.png" not in rows(driver))
        check("survey-video.bin" in rows(driver), "the big file is still listed")
        image_id = [i["id"] for i in server.call("GET", "/v1/parents/project/apollo-11/attachments")[1]["items"]
                    if i["file_name"] == "sunset.png"]
        check(image_id == [], "the image is deleted on the server")
        driver.save_screenshot(os.path.join(args.log_dir, "console-deleted.png"))

        # Nothing left the machine. (The API's answers, such as the 404 of the parent before it
        # was registered, are logged as network errors: only script errors count here.)
        web.check_all_local(net, server)
        errors = web.script_errors(driver)
        check(not errors, f"no script errors in the browser's console {errors[:3]}")
        print(f"console test: passed in {time.time() - t0:.1f} s; screenshots in {args.log_dir}")
    except BaseException:
        web.save_failure(driver, args.log_dir, "console")
        raise
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
