"""The lyceum CLI's older inference commands (issue 14, item 7), each request sent as the CLI
sends it (httpx: its path, with or without the trailing slash as it writes it, a Bearer key, no
redirect followed) and each answer read as the CLI reads it, down to the format strings it
applies, against a deployment of the tiny model served by a real llama-server:

  lyceum models list [--sync|--async|--type T]   GET /api/v2/external/models/ (or .../sync,
                                                 .../async, .../type/T)
  lyceum models info ID                          GET /api/v2/external/models/ID
  lyceum models instances ID                     GET /api/v2/external/models/ID/instances
  lyceum chat send|image                         POST /api/v2/external/sync/
  lyceum chat models                             GET /api/v2/external/models/

The OpenAI SDK's GET {base}/models keeps its list shape at all three prefixes, while the
slashed path under /api/v2/external is the catalogue array. Another org sees none of it."""

import shutil

import pytest
import requests

import inference_util as iu
import runs_util
from conftest import Server

API = "/api/v2/external"


@pytest.fixture(scope="module")
def mod():
    s = Server(["--config", iu.config()])
    iu.add_model(s)
    u = s.new_user(credits=10)
    dep = iu.create(s, u["key"])
    iu.wait_status(s, u["key"], dep, "running")
    yield s, u, dep
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


def cli_get(s, key, endpoint):
    """GET as the CLI makes it: f"{base_url}{endpoint}" with its Bearer header."""
    return requests.get(f"{s.base}{endpoint}", headers={"Authorization": f"Bearer {key}"},
                        timeout=10.0, allow_redirects=False)


def cli_sync(s, key, body):
    return requests.post(f"{s.base}{API}/sync/", json=body, timeout=60.0, allow_redirects=False,
                         headers={"Authorization": f"Bearer {key}",
                                  "Content-Type": "application/json"})


def list_rows(models):
    """What `lyceum models list` prints of each model (it raises where a field is missing or
    of the wrong type, as the CLI would)."""
    rows = []
    for m in sorted(models, key=lambda m: (not m.get("available", False), m.get("type", "text"),
                                          m.get("model_id", ""))):
        price = m.get("price_per_1k_tokens", 0)
        rows.append((m.get("model_id", "Unknown"), m.get("name", "Unknown"),
                     m.get("type", "text").title(), m.get("provider", "unknown").title(),
                     "Yes" if m.get("available") else "No",
                     f"${price:.4f}" if price > 0 else "Free",
                     m.get("supports_sync", True), m.get("supports_async", True)))
    return rows


def info_lines(m):
    """What `lyceum models info` prints (its format strings: ints where it writes ':,')."""
    return [
        m.get("model_id", "Unknown"), m.get("name", "Unknown"),
        m.get("description", "No description available"), m.get("type", "text").title(),
        m.get("provider", "unknown").title(), str(m.get("version", "N/A")),
        "Available" if m.get("available") else "Unavailable",
        m.get("supports_sync", True), m.get("supports_async", True),
        m.get("gpu_required", False), ", ".join(m.get("input_types", [])),
        ", ".join(m.get("output_types", [])), f"{m.get('max_input_tokens', 'N/A'):,}",
        f"{m.get('max_output_tokens', 'N/A'):,}", f"${m.get('price_per_1k_tokens', 0):.4f}",
        f"{m.get('batch_pricing_discount', 0.5) * 100:.0f}%",
        f"{m.get('estimated_latency_ms', 0):,} ms"]


def test_models_list_as_the_cli_reads_it(mod):
    s, u, dep = mod
    r = cli_get(s, u["key"], f"{API}/models/")
    assert r.status_code == 200, r.text
    models = r.json()
    assert isinstance(models, list) and [m["model_id"] for m in models] == [dep], models
    m = models[0]
    assert m["name"] == "tiny" and m["type"] == "text" and m["provider"] == "lyceumd"
    assert m["available"] is True and m["status"] == "running" and m["deployment_id"] == dep
    assert m["hardware_profile"] == "cpu" and m["created_at"]
    assert m["price_per_1k_tokens"] == 0 and m["price_per_hour"] == 0.36
    # Read from the GGUF file's metadata (scripts/gen-tiny-gguf.py writes 2048).
    assert m["context_length"] == 2048 and m["max_input_tokens"] == 2048
    assert list_rows(models) == [(dep, "tiny", "Text", "Lyceumd", "Yes", "Free", True, True)]
    # --sync, --async and --type: the groups.
    for endpoint in (f"{API}/models/sync", f"{API}/models/async", f"{API}/models/type/text"):
        r = cli_get(s, u["key"], endpoint)
        assert r.status_code == 200 and [x["model_id"] for x in r.json()] == [dep], (endpoint,
                                                                                      r.text)
    r = cli_get(s, u["key"], f"{API}/models/type/image")
    assert r.status_code == 200 and r.json() == []
    # `lyceum chat models` reads the same array.
    r = cli_get(s, u["key"], f"{API}/models/")
    assert [("Running" if x.get("available") else "Stopped") for x in r.json()] == ["Running"]


def test_model_info_and_instances_as_the_cli_reads_them(mod):
    s, u, dep = mod
    for model_id in (dep, "tiny"):  # a deployment id, or the model name a call routes by
        r = cli_get(s, u["key"], f"{API}/models/{model_id}")
        assert r.status_code == 200, r.text
        m = r.json()
        assert m["model_id"] == dep and m["available"] is True
        lines = info_lines(m)
        assert lines[12] == "2,048" and lines[13] == "2,048" and lines[14] == "$0.0000"
        assert lines[15] == "0%" and lines[16] == "5,000 ms"
        # And OpenAI's Model object, for the SDK's models.retrieve().
        assert m["id"] == dep and m["object"] == "model" and m["owned_by"] == u["org_id"]
        assert isinstance(m["created"], int) and m["created"] > 0
    assert cli_get(s, u["key"], f"{API}/models/nobody").status_code == 404

    replicas = s.get(f"/inference/{dep}", u["key"]).json()["replicas"]
    r = cli_get(s, u["key"], f"{API}/models/{dep}/instances")
    assert r.status_code == 200, r.text
    instances = r.json()
    assert [i["id"] for i in instances] == [x["replica_id"] for x in replicas] and instances
    for i in instances:
        assert i["status"] == "running" and i["deployment_id"] == dep and i["node_id"]
        # The CLI's row: a short id, and N/A for what is not known.
        row = (i.get("id", "Unknown")[:12], i.get("instance_url", "N/A"),
               i.get("status", "unknown"), i.get("node_id", "N/A") or "N/A",
               i.get("last_health_check", "N/A") or "N/A")
        assert row[0] == i["id"][:12] and row[1] is None and row[4] == "N/A"


def test_openai_models_list_keeps_its_shape_at_every_prefix(mod):
    s, u, dep = mod
    for prefix in (API, f"{API}/serverless", "/openai/v1"):
        r = iu.sdk(s, u["key"], "models", prefix=prefix)
        assert dep in [m["id"] for m in r["data"]], (prefix, r)
        raw = requests.get(f"{s.base}{prefix}/models", timeout=10,
                           headers={"Authorization": "Bearer " + u["key"]}).json()
        assert raw["object"] == "list" and raw["data"][0]["id"] == dep, raw
    # With the slash: the catalogue under /api/v2/external only; elsewhere the slash is ignored.
    assert isinstance(cli_get(s, u["key"], f"{API}/models/").json(), list)
    for prefix in (f"{API}/serverless", "/openai/v1"):
        assert cli_get(s, u["key"], f"{prefix}/models/").json()["object"] == "list"
    # A method the catalogue lacks is a 405 there, as on /models.
    r = requests.post(f"{s.base}{API}/models/", headers={"Authorization": "Bearer " + u["key"]})
    assert r.status_code == 405 and r.headers["Allow"] == "GET", r.text


def test_another_orgs_models_are_404(mod):
    s, u, dep = mod
    other = s.new_user(credits=10)
    for endpoint in (f"{API}/models/{dep}", f"{API}/models/{dep}/instances", f"{API}/models/tiny",
                     f"{API}/models/tiny/instances"):
        r = cli_get(s, other["key"], endpoint)
        assert r.status_code == 404 and "not found" in r.json()["detail"], (endpoint, r.text)
    for endpoint in (f"{API}/models/", f"{API}/models/sync", f"{API}/models/async",
                     f"{API}/models/type/text"):
        r = cli_get(s, other["key"], endpoint)
        assert r.status_code == 200 and r.json() == [], (endpoint, r.text)
    r = cli_sync(s, other["key"], {"model_id": dep, "input": {"text": "hi"}, "max_tokens": 2})
    assert r.status_code == 404, r.text
    # The owner's are intact.
    assert cli_get(s, u["key"], f"{API}/models/{dep}").json()["available"] is True
    assert cli_get(s, u["key"], f"{API}/models/tiny").status_code == 200


def chat(s, key, messages, max_tokens):
    r = requests.post(f"{s.base}/openai/v1/chat/completions", timeout=60,
                      headers={"Authorization": "Bearer " + key},
                      json={"model": "tiny", "messages": messages, "max_tokens": max_tokens,
                            "temperature": 0})
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_send_answers_a_completion_from_the_deployment(mod):
    s, u, dep = mod
    # `lyceum chat send "Hello" -m DEP --max-tokens 7`: its body (temperature 0 for a greedy,
    # comparable answer).
    body = {"model_id": dep, "input": {"text": "Hello", "parameters": {}}, "max_tokens": 7,
            "temperature": 0.0, "top_p": 1.0, "stream": False}
    r = cli_sync(s, u["key"], body)
    assert r.status_code == 200, r.text
    got = r.json()
    usage = got["usage"]
    line = (f"Tokens: {usage.get('total_tokens', 0)} | Latency: {got.get('latency_ms', 0)}ms | "
            f"Cost: ${got.get('cost', 0):.4f}")
    assert isinstance(got["output"], str) and got["output"], got
    assert usage["completion_tokens"] == 7 and line.endswith("Cost: $0.0000")
    assert isinstance(got["latency_ms"], int) and got["model_id"] == dep
    assert got["object"] == "chat.completion"
    assert got["choices"][0]["message"]["content"] == got["output"]
    # The model saw the user's message alone: the same prompt, and the same greedy answer, as
    # a chat completion of it.
    same = chat(s, u["key"], [{"role": "user", "content": "Hello"}], 7)
    assert usage["prompt_tokens"] == same["usage"]["prompt_tokens"]
    assert got["output"] == same["choices"][0]["message"]["content"]
    # --system: a system message before it.
    body["input"]["parameters"] = {"system_prompt": "You answer in one word."}
    r = cli_sync(s, u["key"], body)
    assert r.status_code == 200, r.text
    sys_chat = chat(s, u["key"], [{"role": "system", "content": "You answer in one word."},
                                  {"role": "user", "content": "Hello"}], 7)
    assert r.json()["usage"]["prompt_tokens"] == sys_chat["usage"]["prompt_tokens"]
    assert r.json()["usage"]["prompt_tokens"] > usage["prompt_tokens"]
    # By model name, as `-m tiny`; with --raw, raw_response is the model server's answer.
    r = cli_sync(s, u["key"], {"model_id": "tiny", "input": {"text": "Hello"}, "max_tokens": 3,
                              "raw_output": True})
    assert r.status_code == 200, r.text
    raw = r.json()["raw_response"]
    assert raw["usage"]["completion_tokens"] == 3 and raw["choices"][0]["message"]["content"] == \
        r.json()["output"]
    # An OpenAI chat body, and model/prompt, are taken too.
    r = cli_sync(s, u["key"], {"model": dep, "max_tokens": 2,
                              "messages": [{"role": "user", "content": "Hello"}]})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2, r.text
    r = cli_sync(s, u["key"], {"model": dep, "prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    # The slash-less path is the same route (the slash is ignored there, as everywhere else).
    r = requests.post(f"{s.base}{API}/sync", json={"model": dep, "prompt": "x", "max_tokens": 1},
                      headers={"Authorization": "Bearer " + u["key"]}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1, r.text


def test_chat_send_refuses_bad_bodies(mod):
    s, u, dep = mod
    cases = [({"input": {"text": "hi"}}, "model_id"), ({"model_id": dep}, "messages"),
             ({"model_id": dep, "input": 5}, "input"),
             ({"model_id": dep, "input": "hi", "stream": True}, "stream"),
             ({"model_id": dep, "input": "hi", "max_tokens": "many"}, "max_tokens")]
    for body, field in cases:
        r = cli_sync(s, u["key"], body)
        assert r.status_code == 422, (body, r.text)
        assert field in [e["loc"][-1] for e in r.json()["detail"]], (body, r.text)
    r = requests.post(f"{s.base}{API}/sync/", data=b"{nope", timeout=10,
                      headers={"Authorization": "Bearer " + u["key"],
                               "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text
    r = cli_sync(s, u["key"], {"model_id": "nobody/nothing", "input": "hi"})
    assert r.status_code == 404 and "nobody/nothing" in r.json()["detail"], r.text
    r = requests.post(f"{s.base}{API}/sync/", json={"model_id": dep, "input": "hi"}, timeout=10)
    assert r.status_code == 401
    # The model server's own refusal keeps its status and its error (as /chat/completions).
    r = cli_sync(s, u["key"], {"model": dep, "messages": [{"role": "user", "content": 5}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text


def test_a_deployment_not_ready_is_listed_unavailable_and_async_only():
    """Replicas that never become ready: the model is in the catalogue and in /models/async
    (a batch line waits for it), not available and not in /models/sync; a chat send gets the
    503 the CLI reads as "not running"; its instance shows as starting."""
    s = Server(["--config", runs_util.write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 8}],
        inference={"commands": {"cpu": "/usr/bin/env KEY={api_key} /bin/sleep 600 {port}"},
                   "tick_ms": 50, "wake_timeout_seconds": 1})])
    try:
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"], model="anything")
        iu.wait_status(s, u["key"], dep, "starting")
        models = cli_get(s, u["key"], f"{API}/models/").json()
        assert [(m["model_id"], m["available"], m["status"]) for m in models] == \
            [(dep, False, "starting")], models
        assert list_rows(models)[0][4] == "No"
        # Not a GGUF of the model directory: the context length is unknown (0 for the CLI).
        assert models[0]["context_length"] is None and info_lines(models[0])[12] == "0"
        assert cli_get(s, u["key"], f"{API}/models/sync").json() == []
        assert [m["model_id"] for m in cli_get(s, u["key"], f"{API}/models/async").json()] == [dep]
        r = cli_sync(s, u["key"], {"model_id": dep, "input": {"text": "hi"}, "max_tokens": 2})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        assert r.json()["error"]["type"] == "service_unavailable", r.text
        inst = cli_get(s, u["key"], f"{API}/models/{dep}/instances").json()
        assert inst and {i["status"] for i in inst} == {"starting"}, inst
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_openapi_lists_the_catalogue_paths(mod):
    s, _, _ = mod
    paths = s.get("/openapi.json").json()["paths"]
    for p in ("/models/", "/models/sync", "/models/async", "/models/type/{type}",
              "/models/{model_id}", "/models/{model_id}/instances"):
        assert "get" in paths[API + p], p
    assert "get" in paths[API + "/models"]  # OpenAI's list, a route of its own
    ok = paths[API + "/models/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["type"] == "array"
    assert {"model_id", "available", "price_per_1k_tokens", "context_length"} <= \
        set(ok["schema"]["items"]["properties"])
    sync = paths[API + "/sync/"]["post"]
    assert {"model_id", "model", "input", "messages", "max_tokens"} <= set(
        sync["requestBody"]["content"]["application/json"]["schema"]["properties"])
