from __future__ import annotations

from pathlib import Path

from quoting_worker.adapters.identity import build_hash, config_hash, disagreeing_peers


def test_build_hash_changes_with_the_code(tmp_path: Path) -> None:
    (tmp_path / "quoting_worker").mkdir()
    (tmp_path / "contracts").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    engine = tmp_path / "quoting_worker" / "engine.py"
    engine.write_text("A = 1\n")
    before = build_hash(tmp_path)
    assert build_hash(tmp_path) == before
    engine.write_text("A = 2\n")
    assert build_hash(tmp_path) != before


def test_config_hash_is_order_independent() -> None:
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_peer_with_other_code_or_config_is_named() -> None:
    me = {"worker_id": "w1", "build": "b1", "config": "c1"}
    peers = [
        me,
        {"worker_id": "w2", "build": "b1", "config": "c1"},
        {"worker_id": "w3", "build": "b0", "config": "c1"},
        {"worker_id": "w4", "build": "b1", "config": "c9"},
    ]
    assert disagreeing_peers(me, peers) == ["w3", "w4"]
