"""`xapp descriptor validate|export-osc` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_config import base_doc, make_root, write_doc
from xapp import cli


@pytest.fixture(autouse=True)
def only_descriptor_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other areas' subcommands are not what is under test here.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["xapp.config.cli"])


def test_validate_reports_ok_and_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path)
    good = write_doc(root, base_doc(), "good.yaml")
    doc = base_doc()
    doc["tasks"]["beam"]["exit"] = 11
    doc["batching"]["deadline_ms"] = 2
    bad = write_doc(root, doc, "bad.yaml")

    assert cli.main(["descriptor", "validate", str(good)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {good}: early-exit-xapp 0.1.0, 2 E2 node(s), encoder depth 6")

    assert cli.main(["descriptor", "validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"OK {good}" in captured.out
    assert f"invalid descriptor {bad} (2 problems)" in captured.err
    assert "tasks.beam.exit: 11 is deeper than the encoder (6)" in captured.err
    assert "batching.deadline_ms: 2 is not above max_wait_ms (5)" in captured.err


def test_export_osc_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path)
    source = write_doc(root, base_doc())
    out = tmp_path / "osc"
    assert cli.main(["descriptor", "export-osc", str(source), "--out", str(out), "--image", "o-ran-sc/early-exit"]) == 0
    assert capsys.readouterr().out.split() == ["wrote", str(out / "config-file.json"), "wrote", str(out / "schema.json")]
    config = json.loads((out / "config-file.json").read_text())
    assert config["containers"][0]["image"] == {"registry": "docker.io", "name": "o-ran-sc/early-exit", "tag": "0.1.0"}
    assert json.loads((out / "schema.json").read_text())["$schema"] == "http://json-schema.org/draft-07/schema#"
