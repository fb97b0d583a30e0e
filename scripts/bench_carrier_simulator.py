"""Benchmark of the carrier simulator: ./scripts/bench carrier-simulator [--seconds S]

The simulator must never be the bottleneck (issue 5: >= 5,000 creates/s on this machine).
It runs in its own process; `wrk` (Debian package, installed here when missing and
root) drives it over loopback with unique recipients, in the same run:

  reference  GET /_sim/stats: the same server with a trivial handler (the framework's
             ceiling on this machine, right now);
  creates    POST .../Messages.json: auth, form parsing, validation, segment count,
             storage, Twilio-shaped JSON answer.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
import sys
import tempfile

from _common import ROOT, free_port, stop, wait_for_port

ACCOUNT, TOKEN = "AC" + "0" * 32, "simulator-token"

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %(auth)s"
local n = 0
request = function()
  n = n + 1
  local body = "To=%%2B9725076" .. string.format("%%05d", n %% 100000)
    .. "&From=%%2B15005550006&Body=%%D7%%A9%%D7%%9C%%D7%%95%%D7%%9D+Dana"
  return wrk.format(nil, nil, nil, body)
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk is not available")


def run_wrk(wrk: str, url: str, seconds: int, script: str | None) -> tuple[float, int]:
    cmd = [wrk, "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no request rate:\n{out}")
    rate = float(found.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    wrk = ensure_wrk()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "simulate", "carrier", "--port", str(port),
         "--account-sid", ACCOUNT, "--auth-token", TOKEN],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, 20)
        base = f"http://127.0.0.1:{port}"
        auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(POST_LUA % {"auth": auth})
        ref, _ = run_wrk(wrk, f"{base}/_sim/stats", args.seconds, None)
        creates, bad = run_wrk(
            wrk, f"{base}/2010-04-01/Accounts/{ACCOUNT}/Messages.json", args.seconds, f.name
        )
    finally:
        stop(server)
    print(f"carrier simulator, wrk 1 thread x 32 connections, {args.seconds} s each")
    print(f"  reference  trivial GET handler        {ref:9,.0f} req/s")
    print(f"  creates    POST Messages.json          {creates:9,.0f} req/s   "
          f"{creates / ref:.2f}x reference   [target >= 5,000/s]   non-2xx: {bad}")  # fmt: skip


if __name__ == "__main__":
    main()
