"""Settings precedence (file < env < flags) and the errors a person sees for bad values."""

from __future__ import annotations

import pytest

from agentlab.config import ConfigError, Settings, load_settings, settings_from_run
from agentlab.phases.spec import stop_labels


def test_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "agentlab.toml"
    cfg.write_text('[agentlab]\nmodel = "from-file"\nmax_papers = 7\nsandbox = "docker"\n[agentlab.models]\nplan = "big"\n')
    env = {"AGENTLAB_MODEL": "from-env", "OPENAI_BASE_URL": "http://x/v1"}
    s = load_settings(cfg, {"sandbox": "bwrap"}, env=env)
    assert (s.model, s.max_papers, s.sandbox, s.base_url) == ("from-env", 7, "bwrap", "http://x/v1")
    assert s.model_for("plan") == "big" and s.model_for("review") == "from-env"


@pytest.mark.parametrize("value,expected", [("plan,report", ("plan", "report")), ("all", None), ("none", ())])
def test_checkpoint_lists(value, expected):
    s = load_settings(None, {"checkpoints": value}, env={})
    if expected is None:
        assert s.checkpoints == stop_labels()  # literature, plan, experiment, interpret, review
    else:
        assert s.checkpoints == expected


def test_bad_values_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="unknown checkpoint.*bogus"):
        load_settings(None, {"checkpoints": "plan,bogus"}, env={})
    with pytest.raises(ConfigError, match="max-cost must be positive"):
        load_settings(None, {"max_cost": -1}, env={})
    with pytest.raises(ConfigError, match="on-checkpoint"):
        load_settings(None, {"on_checkpoint": "maybe"}, env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("model = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad, env={})


def test_saved_run_settings_keep_no_secret_and_take_resume_flags(tmp_path):
    s = Settings(base_url="http://x/v1", api_key="sk-secret", max_cost=1.0)
    p = tmp_path / "settings.json"
    s.save(p)
    assert "sk-secret" not in p.read_text()
    again = settings_from_run(p, {"max_cost": 5.0}, env={"OPENAI_API_KEY": "sk-new"})
    assert (again.max_cost, again.api_key, again.base_url) == (5.0, "sk-new", "http://x/v1")
