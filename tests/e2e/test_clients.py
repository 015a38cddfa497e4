"""Real clients (issue 14): each request is sent as the official `lyceum` CLI or Lyceum's web
dashboard sends it (their paths, headers and bodies), and each test asserts what that client
reads from the answer. Storage, the old inference commands and the port proxy have files of
their own (test_clients_storage.py, test_clients_models.py, test_ports.py)."""

import http.client
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from conftest import PREFIX, Server, assert_422, assert_detail
from runs_util import finished, output_of, start, wait_end, write_config

HERE = os.path.dirname(os.path.abspath(__file__))

# One credit a second: a run of a second or two costs whole cents, so statements have amounts
# that a rounding slip would show.
MACHINES = [{"hardware_profile": "cpu", "price_per_hour": "3600", "vcpus": 2,
             "max_concurrent": 4},
            {"hardware_profile": "gpu.a100", "gpu_model": "NVIDIA A100", "gpu_count": 1,
             "gpu_indices": [0], "price_per_hour": "0.36"}]


@pytest.fixture(scope="module")
def cs():
    cfg = write_config(MACHINES)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def sse_events(resp):
    events = []
    for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
        if line and line.startswith("data: "):
            events.append(json.loads(line[6:]))
    return events


def test_the_clis_log_fallback_streams_without_credentials(cs):
    """`lyceum docker logs` falls back to POST /api/v1/stream/{id} with no Authorization
    header: the execution id is the capability there."""
    u = cs.new_user(credits=100)
    run = start(cs, u["key"], "print('one')\nprint('two')\n")
    wait_end(cs, u["key"], run["execution_id"])
    url = f"{cs.base}/api/v1/stream/{run['execution_id']}"
    with requests.post(url, headers={"Accept": "text/event-stream"}, stream=True,
                       timeout=30) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(r)
    assert output_of(events) == "one\ntwo\n" and finished(events)["returnCode"] == 0
    # The id must be one of a run: anything else is 404, with or without credentials.
    for bad in ("00000000-0000-4000-8000-000000000000", "not-a-run"):
        assert_detail(requests.post(f"{cs.base}/api/v1/stream/{bad}", timeout=10), 404)
    # Credentials, when sent, must be of the run's org: another org's key is refused.
    other = cs.new_user()
    r = requests.post(url, headers={"Authorization": f"Bearer {other['key']}"}, timeout=10)
    assert_detail(r, 404)
    # The id is not logged where the capability would leak (the access log shows the pattern).
    assert f"/api/v1/stream/{run['execution_id']}" not in cs.read_log()
    # A deleted run's stream is gone.
    assert cs.delete(f"/execution/{run['execution_id']}", u["key"]).status_code == 200
    assert_detail(requests.post(url, timeout=10), 404)
    # The v2 stream still wants the streaming_url's token or credentials.
    run2 = start(cs, u["key"], "print('x')")
    wait_end(cs, u["key"], run2["execution_id"])
    r = requests.post(f"{cs.base}{PREFIX}/execution/streaming/{run2['execution_id']}", timeout=10)
    assert_detail(r, 401)


def test_execution_ids_are_random_v4_uuids(cs):
    u = cs.new_user(credits=100)
    ids = [start(cs, u["key"], "pass")["execution_id"] for _ in range(8)]
    for i in ids:
        parts = i.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12]
        assert parts[2][0] == "4" and parts[3][0] in "89ab"
    # 122 random bits each: no two share even their first 8 hex digits.
    assert len({i[:8] for i in ids}) == len(ids)


def test_the_dashboards_environment_variables_page(cs):
    u = cs.new_user(credits=100)
    path = "/environment-variables/"
    body = {"environment_variables": [{"name": "GREETING", "value": "hello"},
                                      {"name": "TOKEN", "value": "s3cr3t-value",
                                       "is_secret": True}]}
    r = cs.post(path, u["key"], json=body)
    assert r.status_code == 200, r.text
    assert "s3cr3t-value" not in r.text
    created = r.json()["environment_variables"]
    assert [(i["name"], i["key"]) for i in created] == [("GREETING", "GREETING"),
                                                       ("TOKEN", "TOKEN")]
    # The dashboard reads data.environment_variables.
    data = cs.get(path, u["key"]).json()
    got = {i["name"]: i for i in data["environment_variables"]}
    assert set(got) == {"GREETING", "TOKEN"} and data["count"] == 2
    assert got["GREETING"]["value"] == "hello" and got["GREETING"]["key"] == "GREETING"
    assert got["TOKEN"]["value"] == "********" and got["TOKEN"]["is_secret"] is True
    # The CLI's spelling (key) still works, one at a time, and upserts what the dashboard made.
    r = cs.post(path, u["key"], json={"key": "GREETING", "value": "bonjour"})
    assert r.status_code == 200 and r.json()["name"] == "GREETING", r.text
    assert r.json()["id"] == got["GREETING"]["id"]
    # Both reach the run.
    run = start(cs, u["key"], "import os\nprint(os.environ['GREETING'], os.environ['TOKEN'])")
    wait_end(cs, u["key"], run["execution_id"])
    out = cs.get(f"/execution/{run['execution_id']}", u["key"]).json()["stdout"]
    assert out == "bonjour s3cr3t-value\n"
    # A name given twice in different spellings, or not at all, is refused; nothing is stored.
    assert_422(cs.post(path, u["key"], json={"environment_variables": [
        {"name": "A", "key": "B", "value": "1"}]}), ("body", "name"))
    assert_422(cs.post(path, u["key"], json={"environment_variables": [{"value": "1"}]}),
               ("body", "key"))
    assert_422(cs.post(path, u["key"], json={"environment_variables": [
        {"name": "DUP", "value": "1"}, {"key": "DUP", "value": "2"}]}), ("body", "key"))
    names = {i["name"] for i in cs.get(path, u["key"]).json()["environment_variables"]}
    assert names == {"GREETING", "TOKEN"}


def test_a_docker_run_command_is_optional_in_the_schema(cs):
    """Without docker_run_cmd the request is valid (the image's own command runs: the Docker
    test runs it); what is given must still be a list of strings."""
    doc = cs.get("/openapi.json").json()
    schema = doc["paths"][PREFIX + "/execution/image/start"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert "docker_run_cmd" not in schema.get("required", [])
    u = cs.new_user(credits=100)
    r = cs.post("/execution/image/start", u["key"],
                json={"docker_image_ref": "busybox", "docker_run_cmd": "echo hi"})
    assert_422(r, ("body", "docker_run_cmd"))


def test_invoices_carry_the_stripe_fields_the_dashboard_reads(cs):
    u = cs.new_user(credits=100)
    run = start(cs, u["key"], "import time\ntime.sleep(1.5)")
    wait_end(cs, u["key"], run["execution_id"])
    r = cs.get("/billing/invoices", u["key"])
    assert r.status_code == 200, r.text
    inv = r.json()["invoices"][0]
    assert inv["status"] == "open" and inv["amount"] >= 1.5
    assert inv["currency"] == "usd"
    assert inv["amount_due"] == round(inv["amount"] * 100) == inv["amount_paid"]
    assert isinstance(inv["amount_due"], int) and inv["amount_remaining"] == 0
    assert isinstance(inv["created"], int)
    assert abs(inv["created"] - time.time()) < 120
    assert inv["number"].startswith("LY-") and inv["number"].endswith(inv["period"].replace("-", ""))
    assert inv["description"].startswith("Usage statement for ")
    assert inv["hosted_invoice_url"] == inv["invoice_pdf"]
    page = requests.get(inv["hosted_invoice_url"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    # Another org's statement numbers are its own.
    other = cs.new_user(credits=1)
    theirs = cs.get("/billing/invoices", other["key"]).json()["invoices"][0]
    assert theirs["number"] != inv["number"]


def test_api_keys_are_listed_newest_first(cs):
    """The dashboard pairs the secret it was just given with the first key of the list."""
    u = cs.new_user()
    made = []
    for name in ("first", "second", "third"):
        r = cs.post("/auth/api-keys/", u["key"], json={"key_name": name})
        assert r.status_code == 200, r.text
        made.append(r.json())
    listed = cs.get("/auth/api-keys/", u["key"]).json()
    names = [k.get("key_name") or k.get("name") for k in listed]
    assert names[:3] == ["third", "second", "first"]
    assert listed[0]["id"] == made[-1]["id"]


def raw_get(port, path, key=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def test_a_base_url_saved_with_a_trailing_slash_still_works(cs):
    u = cs.new_user(credits=2)
    status, body = raw_get(cs.port, "//api/v2/external/user/status", u["key"])
    assert status == 200 and json.loads(body)["email"] == u["email"]
    status, body = raw_get(cs.port, "///health")
    assert status == 200
    # Only the start: a doubled slash further on is not a path of ours.
    status, _ = raw_get(cs.port, "/api/v2/external//user/status", u["key"])
    assert status == 404


def test_numbers_are_written_as_people_write_them(cs):
    u = cs.new_user(credits="0.36")
    for path in ("/billing/credits", "/machine-types", "/user/status"):
        r = cs.get(path, u["key"])
        assert r.status_code == 200, r.text
        assert "0.36" in r.text and "0.3599" not in r.text and "0.3600000" not in r.text, r.text
    assert cs.get("/billing/credits", u["key"]).json()["available_credits"] == 0.36


def test_make_run_installs_only_what_serving_needs():
    deps = os.path.join(HERE, "..", "..", "scripts", "deps.sh")
    serve = subprocess.run(["sh", deps, "--list", "serve"], capture_output=True, text=True,
                           check=True).stdout.split()
    test = subprocess.run(["sh", deps, "--list", "test"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert set(serve) < set(test)
    assert {"libmicrohttpd-dev", "bubblewrap", "slirp4netns"} <= set(serve)
    for tool in ("slurmctld", "slurmrestd", "nginx-light", "prometheus", "awscli", "wrk",
                 "python3-pytest", "docker-registry", "faketime"):
        assert tool not in serve and tool in test
    with open(os.path.join(HERE, "..", "..", "Makefile")) as f:
        mk = f.read()
    assert "\nrun: deps-serve " in mk and "\ntest: deps\n" in mk
