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


def test_build_hash_covers_the_compiled_core_it_runs(tmp_path: Path) -> None:
    """The same sources with another compiled build are other code."""
    (tmp_path / "quoting_worker").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "quoting_worker" / "engine.py").write_text("A = 1\n")
    compiled = tmp_path / "quoting_worker" / "_compiled"
    compiled.mkdir()
    extension = compiled / "engine.cpython-311-x86_64-linux-gnu.so"
    extension.write_bytes(b"\x7fELF one")
    interpreted = build_hash(tmp_path)
    one = build_hash(tmp_path, compiled)
    extension.write_bytes(b"\x7fELF two")
    assert len({interpreted, one, build_hash(tmp_path, compiled)}) == 3


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
