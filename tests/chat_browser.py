"""Two headless Chromium pages chat through an eddy chat server (tests/chat_browser.rs).

    chat_browser.py CHROMIUM BASE_URL

Opens BASE_URL/?say=from-a, waits until it is connected, opens BASE_URL/?say=from-b, then
reads both pages' message lists from the DOM over the DevTools protocol (driven with
Python's `websockets`). Prints one JSON line {"a": [...], "b": [...]}. Exit code 3 when
`websockets` cannot be imported.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    from websockets.asyncio.client import connect
except ImportError as e:
    print(f"websockets not importable: {e}", file=sys.stderr)
    sys.exit(3)

LIST = "JSON.stringify([document.getElementById('state').textContent, " \
       "[...document.querySelectorAll('#log li')].map(li => li.textContent)])"


async def evaluate(ws_url, expression):
    async with connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"id": 1, "method": "Runtime.evaluate",
                                  "params": {"expression": expression, "returnByValue": True}}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == 1:
                value = reply.get("result", {}).get("result", {}).get("value")
                # Before the page has loaded the expression throws: not there yet.
                return json.loads(value) if value else ["loading", []]


async def wait_for(ws_url, done, limit_s=20):
    deadline = time.time() + limit_s
    while True:
        state = await evaluate(ws_url, LIST)
        if done(state) or time.time() > deadline:
            return state
        await asyncio.sleep(0.1)


def open_page(port, url):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?{url}", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["webSocketDebuggerUrl"]


async def main(chromium, base):
    profile = tempfile.mkdtemp(prefix="eddy-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        a = open_page(port, base + "/?say=from-a")
        await wait_for(a, lambda s: s[0] == "open" and "from-a" in s[1])
        b = open_page(port, base + "/?say=from-b")
        want = lambda s: "from-b" in s[1]
        state_b = await wait_for(b, want)
        state_a = await wait_for(a, want)
        print(json.dumps({"a": state_a[1], "b": state_b[1]}), flush=True)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
