#!/usr/bin/env python3
"""tests/serve/soak.py: the soak test of issue 6. One agent serving the demo
model and the tools copy (the demo's weights under Qwen3's chat template);
8 client threads send 200 mixed requests between them (OpenAI chat and
completions, Ollama chat and generate, streamed or not, some with stop
strings or seeds, a few malformed or naming no model) and drop about one in
five connections at a random point (mid-stream, or before the answer).
Seeded: SOAK_SEED (default 6) picks every request and disconnect.

Afterwards: the agent answers /health and a final greedy request exactly,
no runner crashed or leaked (its children are exactly its runners, with
their original pids), no slot is left busy, and the agent holds no more file
descriptors than before plus a small bound. Prints TAP, with the figures
(counts by outcome, latencies, tokens/s) as diagnostics.

Usage: SHOAL_BIN=build/shoal SHOAL_SOURCE_ROOT=. tests/serve/soak.py
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

N_REQUESTS = int(os.environ.get("SOAK_REQUESTS", "200"))
N_CLIENTS = 8
SEED = int(os.environ.get("SOAK_SEED", "6"))
JOHN = ("For God so loved the world, that he gave his only begotten Son, that whosoever "
        "believeth in him should not perish, but have everlasting life.")

root = os.environ["SHOAL_SOURCE_ROOT"]
binary = os.environ["SHOAL_BIN"]
demo_dir = os.path.join(root, "models", "kjv-llama-16m")
points = []


def tap(ok, name):
    points.append(ok)
    print(f"{'ok' if ok else 'not ok'} {len(points)} - {name}", flush=True)


def diag(text):
    for line in text.splitlines():
        print(f"# {line}", flush=True)


def make_tools_model(tmp):
    d = os.path.join(tmp, "kjv-qwen3-tools")
    os.makedirs(d)
    for f in os.listdir(demo_dir):
        if not f.endswith(".md"):
            os.symlink(os.path.join(demo_dir, f), os.path.join(d, f))
    with open(os.path.join(root, "tests/fixtures/tokenizers/qwen3/tokenizer_config.json")) as f:
        tmpl = json.load(f)["chat_template"]
    with open(os.path.join(d, "chat_template.jinja"), "w") as f:
        f.write(tmpl)
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def health(port):
    return json.loads(get(port, "/health")[1])


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(x) for x in out.split())


PROMPTS = ["Recite John 3:16", "And the LORD said unto Moses", "Blessed are the meek",
           "In the beginning God created", "The LORD is my shepherd", "And it came to pass"]


def make_request(rng, i):
    """One request: (name, method path, body bytes, stream, disconnect plan)."""
    model = rng.choice(["kjv-llama-16m", "kjv-llama-16m", "kjv-qwen3-tools"])
    prompt = rng.choice(PROMPTS)
    stream = rng.random() < 0.5
    n = rng.randint(1, 48)
    kind = rng.choice(["oai_chat", "oai_completion", "oll_chat", "oll_generate"])
    extra_oai, options = {}, {"num_predict": n}
    if rng.random() < 0.3:
        extra_oai["stop"] = options["stop"] = [rng.choice([",", " the", "LORD", "\n"])]
    if rng.random() < 0.3:
        extra_oai["seed"] = options["seed"] = rng.randint(0, 1 << 31)
    if rng.random() < 0.2:
        extra_oai["temperature"] = options["temperature"] = 0
    r = rng.random()
    if r < 0.04:
        model = "no-such-model"
    if stream:
        extra_oai["stream_options"] = {"include_usage": True}
    if kind == "oai_chat":
        path, body = "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": n, "stream": stream, **extra_oai}
    elif kind == "oai_completion":
        path, body = "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": n,
                                         "stream": stream, **extra_oai}
    elif kind == "oll_chat":
        path, body = "/api/chat", {"model": model, "stream": stream, "options": options,
                                   "messages": [{"role": "user", "content": prompt}]}
    else:
        path, body = "/api/generate", {"model": model, "prompt": prompt, "stream": stream,
                                       "raw": rng.random() < 0.5, "options": options}
    data = json.dumps(body).encode()
    if 0.04 <= r < 0.07:
        data = data[: len(data) // 2]  # malformed JSON
    plan = None
    if rng.random() < 0.2:
        # disconnect: before reading anything, or after k lines of the stream
        plan = ("early", rng.uniform(0, 0.05)) if not stream or rng.random() < 0.3 else \
            ("lines", rng.randint(1, 6))
    return kind, path, data, stream, plan


def run_one(port, req, stats, lock):
    kind, path, data, stream, plan = req
    t0 = time.monotonic()
    outcome, tokens = None, 0
    sock = None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        sock = c.sock
        if plan and plan[0] == "early":
            time.sleep(plan[1])
            sock.shutdown(socket.SHUT_RDWR)
            c.close()
            outcome = "disconnected"
        else:
            r = c.getresponse()
            if r.status != 200:
                r.read()
                outcome = f"http {r.status}"
            elif stream:
                lines = 0
                for line in r:
                    if not line.strip():
                        continue
                    lines += 1
                    if b'"error"' in line:
                        outcome = "error in stream"
                    if plan and lines >= plan[1]:
                        outcome = "disconnected"
                        sock.shutdown(socket.SHUT_RDWR)
                        break
                    text = line.decode()
                    if text.startswith("data: ") and "usage" in text and '"completion_tokens"' in text:
                        tokens = json.loads(text[6:])["usage"]["completion_tokens"]
                    elif text.startswith("{") and '"eval_count"' in text:
                        tokens = json.loads(text)["eval_count"]
                outcome = outcome or "completed"
            else:
                body = json.loads(r.read())
                tokens = body.get("usage", {}).get("completion_tokens") or body.get("eval_count", 0)
                outcome = "completed"
            c.close()
    except Exception as e:  # noqa: BLE001 - every failure is counted by kind
        outcome = f"client error {type(e).__name__}"
    with lock:
        stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
        if outcome == "completed":
            stats["latency"].append(time.monotonic() - t0)
            stats["tokens"] += tokens or 0


def main():
    tmp = tempfile.mkdtemp(prefix="shoal-soak-")
    log = open(os.path.join(tmp, "agent.log"), "w")
    tools = make_tools_model(tmp)
    port = free_port()
    agent = subprocess.Popen([binary, "agent", "--data-dir", os.path.join(tmp, "data"),
                              "--api-port", str(port), "--peer-port", "0", "--no-mdns", "--model", demo_dir, "--model", tools],
                             stdout=log, stderr=log)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                h = health(port)
                if all(m["state"] == "ready" for m in h["models"]):
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("the agent did not come up")
            time.sleep(0.1)
        runners = children(agent.pid)
        runner_pids = sorted(m["pid"] for m in h["models"])
        fd_before = fds(agent.pid)
        tap(runners == runner_pids and len(runners) == 2, "agent up with its 2 runners")

        rng = random.Random(SEED)
        reqs = [make_request(rng, i) for i in range(N_REQUESTS)]
        stats = {"outcomes": {}, "latency": [], "tokens": 0}
        lock = threading.Lock()
        queue = list(enumerate(reqs))

        def client():
            while True:
                with lock:
                    if not queue:
                        return
                    _, req = queue.pop(0)
                run_one(port, req, stats, lock)

        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(N_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0

        total = sum(stats["outcomes"].values())
        lat = sorted(stats["latency"])
        diag(f"{total} requests from {N_CLIENTS} clients in {wall:.1f} s (seed {SEED})")
        for k in sorted(stats["outcomes"]):
            diag(f"  {k}: {stats['outcomes'][k]}")
        if lat:
            diag(f"completed: latency p50 {lat[len(lat) // 2]:.2f} s, p95 "
                 f"{lat[int(len(lat) * 0.95)]:.2f} s, max {lat[-1]:.2f} s; "
                 f"{stats['tokens']} tokens, {stats['tokens'] / wall:.0f} tokens/s overall")
        tap(total == N_REQUESTS, f"all {N_REQUESTS} requests accounted for")
        bad = {k: v for k, v in stats["outcomes"].items()
               if k.startswith("client error") or k == "error in stream" or k == "http 500"}
        tap(not bad, f"no server failures or hung clients ({bad or 'none'})")
        tap(stats["outcomes"].get("completed", 0) > N_REQUESTS // 2, "most requests completed")
        tap(stats["outcomes"].get("http 404", 0) > 0 and stats["outcomes"].get("http 400", 0) > 0,
            "unknown models got 404 and malformed bodies 400")

        # Cancels of dropped clients settle within a token or two.
        end = time.monotonic() + 10
        while time.monotonic() < end:
            h = health(port)
            if all(m["busy"] == 0 and m["queued"] == 0 for m in h["models"]):
                break
            time.sleep(0.1)
        tap(all(m["busy"] == 0 and m["queued"] == 0 for m in h["models"]),
            "afterwards no slot is busy and nothing waits")
        tap(h["status"] == "ok", "/health answers ok")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/v1/chat/completions", body=json.dumps({
            "model": "kjv-llama-16m", "temperature": 0,
            "messages": [{"role": "user", "content": "Recite John 3:16"}]}))
        final = json.loads(c.getresponse().read())
        c.close()
        tap(final["choices"][0]["message"]["content"] == JOHN, "a final request answers exactly")
        tap(children(agent.pid) == runners and all(m["restarts"] == 0 for m in h["models"]),
            "no runner crashed, restarted or leaked (same 2 children)")
        fd_after = fds(agent.pid)
        diag(f"agent file descriptors: {fd_before} before, {fd_after} after")
        tap(fd_after <= fd_before + 4, "no file descriptor growth beyond 4")
        cancels = open(os.path.join(tmp, "agent.log")).read().count("cancelled (client gone)")
        diag(f"generations cancelled by disconnects: {cancels}")
        agent.send_signal(signal.SIGTERM)
        tap(agent.wait(timeout=20) == 0, "SIGTERM: the agent exits 0")
        tap(all(not os.path.exists(f"/proc/{p}") for p in runners), "its runners are gone")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        log.close()
        if os.environ.get("SOAK_KEEP"):
            diag(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"1..{len(points)}")
    return 0 if all(points) else 1


if __name__ == "__main__":
    sys.exit(main())
