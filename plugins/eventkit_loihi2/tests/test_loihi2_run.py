"""The loihi2 target in a real run: what it refuses before training starts."""

import json

from eventkit.plugin.testing import run_cli, tiny_run


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("eventkit:")]


def test_lava_required_without_lava_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTKIT_LAVA_ENV", str(tmp_path / "no-lava-env"))
    monkeypatch.setenv("EVENTKIT_LAVA_PYTHON", str(tmp_path / "no-lava-env" / "bin" / "python"))
    out = run_cli(*tiny_run(), "target=loihi2", "target.lava=required", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    errors = _errors(out.stderr)
    assert len(errors) == 1 and "lava=required" in errors[0] and "Fix:" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and "no Lava environment" in summary["error"]
    assert not (tmp_path / "r" / "metrics.jsonl").exists()  # stopped before the first epoch
