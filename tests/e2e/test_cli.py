"""The `broker` command as an operator runs it: real processes, a real SQLite file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

BROKER = [sys.executable, "-m", "web.cli"]


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "DATABASE_URL", "STRIPE_"))}
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def broker(tmp_path, *args, **env):
    return subprocess.run(BROKER + list(args), cwd=tmp_path, env=_env(tmp_path, **env), capture_output=True,
                          text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_commands_refuse_an_unmigrated_database(tmp_path):
    result = broker(tmp_path, "settle")
    assert result.returncode != 0
    assert "broker db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_upgrade_demo_and_settle(tmp_path):
    assert broker(tmp_path, "db", "upgrade").returncode == 0
    demo = broker(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "bk_m_" in demo.stdout and (tmp_path / "broker-demo.txt").exists()
    assert "there already" in broker(tmp_path, "demo").stdout

    plan = broker(tmp_path, "settle", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["dry_run"] and planned["settled"] == 4
    assert (planned["to_retailers"], planned["to_manufacturer"]) == (3, 1)

    real = json.loads(broker(tmp_path, "settle", "--json").stdout)
    assert [d for d in planned["plan"]] and real["settled"] == 4 and real["run_id"]
    assert json.loads(broker(tmp_path, "settle", "--json").stdout)["settled"] == 0

    assert broker(tmp_path, "db", "check").returncode == 0


def test_bad_settle_time_is_a_usage_error(tmp_path):
    broker(tmp_path, "db", "upgrade")
    result = broker(tmp_path, "settle", "--as-of", "yesterday")
    assert result.returncode == 2 and "ISO 8601" in result.stderr


def test_settle_a_shard_or_named_manufacturers(tmp_path):
    assert broker(tmp_path, "db", "upgrade").returncode == 0
    assert broker(tmp_path, "demo").returncode == 0

    # The demo's one manufacturer has id 1: shard 2 of 2 (ids modulo 2 are 1).
    other = json.loads(broker(tmp_path, "settle", "--shard", "1/2", "--dry-run", "--json").stdout)
    assert (other["scope"], other["settled"]) == ("shard 1/2", 0)
    mine = json.loads(broker(tmp_path, "settle", "--shard", "2/2", "--dry-run", "--json").stdout)
    assert (mine["scope"], mine["settled"]) == ("shard 2/2", 4)
    named = broker(tmp_path, "settle", "--manufacturer", "northwind", "--json")
    assert named.returncode == 0, named.stderr
    assert (json.loads(named.stdout)["scope"], json.loads(named.stdout)["settled"]) == ("manufacturer northwind", 4)

    unknown = broker(tmp_path, "settle", "--manufacturer", "northwind", "--manufacturer", "southwind")
    assert unknown.returncode == 1 and "no manufacturer has the slug 'southwind'" in unknown.stderr
    both = broker(tmp_path, "settle", "--shard", "1/2", "--manufacturer", "northwind")
    assert both.returncode == 2 and "not both" in both.stderr
    for command in ("settle", "scheduler"):
        bad = broker(tmp_path, command, "--shard", "3/2")
        assert bad.returncode == 2 and "--shard" in bad.stderr and "from 1 to 2" in bad.stderr
    configured = broker(tmp_path, "scheduler", BROKER_SETTLE_SHARD="half")
    assert configured.returncode == 2 and "BROKER_SETTLE_SHARD must be K/N" in configured.stderr
    assert not any("Traceback" in r.stderr for r in (unknown, both, bad, configured))


def test_run_starts_everything_with_demo_data(tmp_path):
    port = free_port()
    proc = subprocess.Popen(BROKER + ["run", "--port", str(port)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        home = _wait_for(base + "/", proc)
        assert "Northwind Cycles" in home
        store = urllib.request.urlopen(base + "/s/northwind/", timeout=5).read().decode()
        assert "Aero road bike" in store and "$1,899.00" in store
        spec = json.load(urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=5))
        assert "/api/v1/board" in spec["paths"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "demo storefront" in output and "operator token" in output
    assert (tmp_path / "broker.db").exists()


def test_serve_refuses_without_a_secret_key(tmp_path):
    assert broker(tmp_path, "db", "upgrade").returncode == 0
    for command in ("serve", "scheduler"):
        result = broker(tmp_path, command, "--port", str(free_port())) if command == "serve" \
            else broker(tmp_path, command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "BROKER_SECRET_KEY is not set" in result.stderr
        assert 'python -c "import secrets; print(secrets.token_hex(32))"' in result.stderr
        assert "Traceback" not in result.stderr


def test_one_machine_commands_keep_one_key_beside_the_database(tmp_path):
    assert broker(tmp_path, "db", "upgrade").returncode == 0
    assert broker(tmp_path, "demo").returncode == 0
    key = tmp_path / "broker.db.secret"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    first = key.read_text()
    assert len(first.strip()) == 64
    assert broker(tmp_path, "settle", "--dry-run").returncode == 0
    assert key.read_text() == first


def test_email_links_follow_the_served_port(tmp_path):
    port = free_port()
    proc = subprocess.Popen(BROKER + ["run", "--port", str(port)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/", proc)
        order = json.dumps({"items": [{"sku": "NW-LOCK", "quantity": 1}],
                            "customer": {"name": "Ada", "email": "ada@example.com"},
                            "ship_to": {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                                        "country": "US"}}).encode()
        placed = json.load(urllib.request.urlopen(urllib.request.Request(
            base + "/api/v1/storefronts/northwind/orders", data=order,
            headers={"Content-Type": "application/json"}), timeout=10))
        # Another name for the machine is not one Broker answers to.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Host": "evil.example"}), timeout=5)
        refused.value.close()
        assert refused.value.code == 400
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"Broker is running at {base}/" in output
    sent = broker(tmp_path, "emails", "send")
    assert sent.returncode == 0, sent.stderr
    mail = "\n".join(p.read_text() for p in (tmp_path / "var" / "mail").glob("*.eml"))
    assert f"{base}/s/northwind/o/{placed['id']}/" in mail
    assert "127.0.0.1:8000" not in mail


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"broker run exited early:\n{proc.stdout.read()}")
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {seconds}s")


def test_tax_report_prints_csv_and_refuses_an_unknown_manufacturer(tmp_path):
    assert broker(tmp_path, "db", "upgrade").returncode == 0
    assert broker(tmp_path, "demo").returncode == 0
    report = broker(tmp_path, "tax", "report", "--manufacturer", "northwind", "--from", "2026-01-01",
                    "--to", "2027-01-01")
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].startswith("jurisdiction,period_start,period_end,currency,orders")
    unknown = broker(tmp_path, "tax", "report", "--manufacturer", "nobody", "--from", "2026-01-01",
                     "--to", "2027-01-01")
    assert unknown.returncode != 0 and "no manufacturer 'nobody'" in unknown.stderr
    backwards = broker(tmp_path, "tax", "report", "--manufacturer", "northwind", "--from", "2027-01-01",
                       "--to", "2026-01-01")
    assert backwards.returncode != 0 and "Traceback" not in backwards.stderr
