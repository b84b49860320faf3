#!/usr/bin/env python3
"""tests/serve/bench_api.py: not a test: the API's overhead over `shoal run`
for one model, same prompt, same threads, greedy. Prints medians of RUNS
runs (alternating, one request at a time):

  shoal run     prompt eval time, time to first token (process start to the
                first byte on stdout, minus the load time the summary does not
                show: reported separately), generation tokens/s from its
                summary line
  API stream    time to first token (request sent -> first content chunk),
                decode tokens/s between the first and last chunk (client
                clock), and the server's own eval rate (Ollama eval_duration)
  API whole     request -> full JSON answer, tokens/s over that time

Usage: tests/serve/bench_api.py [--bin build-rel/shoal] [--model DIR]
       [--threads 2] [--runs 7] [--tokens 200]
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time

PROMPT = "And the LORD spake unto Moses, saying"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_cli(a):
    t0 = time.perf_counter()
    p = subprocess.Popen([a.bin, "run", "--model", a.model, "--prompt", PROMPT, "-n",
                          str(a.tokens), "--temp", "0", "--no-eos", "--threads", str(a.threads)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.read(1)
    t_first = time.perf_counter() - t0
    p.stdout.read()
    err = p.stderr.read().decode()
    p.wait()
    m = re.search(r"prompt: (\d+) tokens, ([\d.]+) tok/s \| generation: (\d+) tokens, ([\d.]+) tok/s",
                  err)
    assert first and m, err
    n_prompt, prompt_rate, n_gen, gen_rate = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    return {"ttfb_process": t_first, "prompt_s": n_prompt / prompt_rate, "gen_rate": gen_rate,
            "n_gen": n_gen}


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    return c, c.getresponse()


def run_stream(a, port):
    body = {"model": a.id, "prompt": PROMPT, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": a.tokens}}
    t0 = time.perf_counter()
    c, r = post(port, "/api/generate", body)
    t_first = t_last = None
    n = 0
    final = None
    for line in r:
        o = json.loads(line)
        if o.get("response"):
            now = time.perf_counter()
            t_first = t_first or now
            t_last = now
            n += 1
        if o.get("done"):
            final = o
    c.close()
    return {"ttft": t_first - t0, "client_rate": (n - 1) / (t_last - t_first),
            "server_rate": (final["eval_count"] - 1) / (final["eval_duration"] / 1e9),
            "n": final["eval_count"], "prompt_s": final["prompt_eval_duration"] / 1e9}


def run_whole(a, port):
    body = {"model": a.id, "prompt": PROMPT, "temperature": 0, "max_tokens": a.tokens}
    t0 = time.perf_counter()
    c, r = post(port, "/v1/completions", body)
    o = json.loads(r.read())
    dt = time.perf_counter() - t0
    c.close()
    return {"total": dt, "rate": o["usage"]["completion_tokens"] / dt,
            "n": o["usage"]["completion_tokens"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-rel/shoal")
    ap.add_argument("--model", default="models/kjv-llama-16m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=200)
    a = ap.parse_args()
    a.id = os.path.basename(os.path.normpath(a.model))
    tmp = tempfile.mkdtemp(prefix="shoal-bench-")
    port = free_port()
    agent = subprocess.Popen([a.bin, "agent", "--data-dir", tmp + "/data", "--api-port", str(port), "--peer-port", "0", "--no-mdns",
                              "--model", a.model, "--threads", str(a.threads), "--slots", "1",
                              "--log-level", "warn"])
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if b'"ready"' in c.getresponse().read():
                    break
            except OSError:
                pass
            time.sleep(0.1)
        run_stream(a, port)  # warm-up: page in the weights
        cli, st, wh = [], [], []
        for _ in range(a.runs):
            cli.append(run_cli(a))
            st.append(run_stream(a, port))
            wh.append(run_whole(a, port))
    finally:
        agent.terminate()
        agent.wait()
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    load = os.getloadavg()
    print(f"model {a.id}, {a.threads} threads, prompt {PROMPT!r}, {a.tokens} tokens greedy, "
          f"median of {a.runs} runs, load average {load[0]:.2f}")
    print(f"shoal run   : prompt eval {med(cli, 'prompt_s') * 1e3:.1f} ms; first byte "
          f"{med(cli, 'ttfb_process') * 1e3:.1f} ms after exec (model load included); "
          f"generation {med(cli, 'gen_rate'):.1f} tok/s ({cli[0]['n_gen']} tokens)")
    print(f"API stream  : time to first token {med(st, 'ttft') * 1e3:.1f} ms (prompt eval "
          f"{med(st, 'prompt_s') * 1e3:.1f} ms in the runner); decode {med(st, 'client_rate'):.1f} "
          f"tok/s at the client, {med(st, 'server_rate'):.1f} tok/s in the runner ({st[0]['n']} tokens)")
    print(f"API whole   : {med(wh, 'total') * 1e3:.1f} ms for {wh[0]['n']} tokens, "
          f"{med(wh, 'rate'):.1f} tok/s including the prompt")


if __name__ == "__main__":
    main()
