"""Configs keep no secrets: credentials' values are masked before they leave the training
process, at its start and in set_config(), nested maps too; ordinary keys that merely
mention tokens or keys are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_endpoint, start_cli, stop, wait_listening
from trainmon.sources.recording import load
from trainmon_client.redact import is_secret_key, masked

# Each secret is a text found nowhere else, so its bytes can be looked for.
SECRETS = {
    "hub_token": "hf_SEKRIThubtoken0001",
    "wandb_api_key": "SEKRITwandbkey0002",
    "db_password": "SEKRITdbpass0003",
    "OPENAI_API_KEY": "sk-SEKRITopenai0004",
}
NESTED = {"aws": {"secret_access_key": "SEKRITaws0005", "region": "eu-west-1"}}
LISTED = {"callbacks": [{"name": "wandb", "apiKey": "SEKRITlisted0006"}]}
ORDINARY = {
    "tokenizer_name": "gpt2",
    "max_tokens": 512,
    "pad_token": "<pad>",
    "pad_token_id": 0,
    "sort_key": "loss",
    "use_auth_token": True,
    "hub_model_id": "me/model",
}

SCRIPT = """
import sys
from trainmon_client import Monitor

endpoint, recording, start, later = sys.argv[1], sys.argv[2], eval(sys.argv[3]), eval(sys.argv[4])
with Monitor(endpoint, run="r", config=start, record_to=recording) as mon:
    for step in range(20):
        mon.log(loss=1 / (step + 1), step=step)
        if step == 10:
            mon.set_config(later)
"""


@pytest.mark.parametrize(
    "key",
    [
        "hub_token",
        "push_to_hub_token",
        "HF_TOKEN",
        "hubToken",
        "token",
        "access_token",
        "wandb_api_key",
        "OPENAI_API_KEY",
        "apikey",
        "x-api-key",
        "db_password",
        "PASSWORD",
        "passwd",
        "client_secret",
        "secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "private_key",
        "credentials",
        "authorization",
    ],
)
def test_credential_keys_are_found(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokenizer_name",
        "max_tokens",
        "max_new_tokens",
        "num_tokens",
        "pad_token",
        "eos_token",
        "bos_token",
        "pad_token_id",
        "tokens_per_second",
        "sort_key",
        "key",
        "monkey",
        "lr",
        "hub_model_id",
        "author",
        "keyword",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_masked_copies_nested_maps_and_lists_and_keeps_unset_values() -> None:
    config = {**SECRETS, **NESTED, **LISTED, **ORDINARY, "hf_token": None, "api_key": ""}
    out = masked(config)
    assert {key: out[key] for key in SECRETS} == dict.fromkeys(SECRETS, "***")
    assert out["aws"] == {"secret_access_key": "***", "region": "eu-west-1"}
    assert out["callbacks"] == [{"name": "wandb", "apiKey": "***"}]
    assert {key: out[key] for key in ORDINARY} == ORDINARY
    assert out["hf_token"] is None and out["api_key"] == ""
    assert config["hub_token"] == SECRETS["hub_token"], "the caller's map is left alone"


def test_secrets_never_leave_the_process(tmp_path: Path) -> None:
    """A real training process with credentials in its config (at the start, and nested
    in set_config() later) and a real `trainmon watch --record`: the monitor's
    recording and the client's own hold no secret's bytes, the hellos carry "***" where
    they were, ordinary keys arrive as they were, and the summary shows them so."""
    endpoint = free_endpoint()
    received, sent = tmp_path / "watch.tmrec", tmp_path / "client.tmrec"
    watch = start_cli(
        "watch", "--bind", endpoint, "--plain", "--exit-when-done", "--record", str(received)
    )
    start = {**SECRETS, **ORDINARY}
    later = {**NESTED, **LISTED}
    train = None
    try:
        wait_listening(endpoint)
        train = subprocess.run(
            [sys.executable, "-c", SCRIPT, endpoint, str(sent), repr(start), repr(later)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert train.returncode == 0, train.stderr
        out, err = watch.communicate(timeout=60)
    finally:
        stop(watch)
    assert watch.returncode == 0, err
    secrets = [*SECRETS.values(), "SEKRITaws0005", "SEKRITlisted0006"]
    for path in (received, sent):
        data = path.read_bytes()
        assert b"SEKRIT" not in data, [s for s in secrets if s.encode() in data]
    hellos = [r for r in load([received]).records if r.kind == "hello"]
    first, last = hellos[0].info["config"], hellos[-1].info["config"]
    assert {key: first[key] for key in SECRETS} == dict.fromkeys(SECRETS, "***")
    assert {key: first[key] for key in ORDINARY} == ORDINARY
    assert last["aws"] == {"secret_access_key": "***", "region": "eu-west-1"}
    assert last["callbacks"] == [{"name": "wandb", "apiKey": "***"}]
    assert "config: hub_token=***, wandb_api_key=***, db_password=***" in out, out
    assert "SEKRIT" not in out + err + train.stderr
