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
    with pytest.raises(ConfigError, match="unknown on_checkpoint .maybe.; choose one of: approve, park"):
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


def test_every_choice_is_checked_with_the_nearest_name():
    cases = {"sandbox": ("bwarp", "unknown sandbox 'bwarp' (did you mean 'bwrap'?); choose one of: auto, bwrap"),
             "template": ("artcle", "unknown report template 'artcle' (did you mean 'article'?)"),
             "retriever": ("embeding", "unknown retriever 'embeding' (did you mean 'embedding'?)"),
             "api_doc_mode": ("ful", "unknown api_doc_mode 'ful' (did you mean 'full'?)"),
             "structured_mode": ("json", "unknown structured_mode 'json'"),
             "experiment_model": ("tiny_llama", "did you mean 'tiny-llama'?"),
             "llm_backend": ("opnai", "unknown llm_backend 'opnai' (did you mean 'openai'?)"),
             "paper_sources": ("arxvi", "unknown paper source 'arxvi' (did you mean 'arxiv'?)")}
    for name, (bad, msg) in cases.items():
        with pytest.raises(ConfigError) as exc:
            load_settings(None, {name: bad}, env={})
        assert msg in str(exc.value), name
    with pytest.raises(ConfigError, match=r"unknown setting 'sandbx' \(did you mean 'sandbox'\?\)"):
        load_settings(None, {"sandbx": "bwrap"}, env={})
    assert load_settings(None, {"sandbox": "bwarp"}, env={}, validate=False).sandbox == "bwarp"


def test_the_idea_needs_ten_characters():
    from agentlab.config import check_idea

    assert check_idea("  Does   H2O work?  ") == "Does H2O work?"
    for idea in ("", "   ", "KV?  cache"[:6]):
        with pytest.raises(ConfigError, match="10 characters or more"):
            check_idea(idea)


def test_resume_layers_file_env_set_and_flags_over_the_saved_settings(tmp_path):
    from agentlab.config import resume_settings

    p = tmp_path / "settings.json"
    Settings(model="saved", sandbox="bwarp", max_papers=3, runs_dir="old-runs").save(p)  # an old, bad value
    cfg = tmp_path / "agentlab.toml"
    cfg.write_text('[agentlab]\nmodel = "file"\nmax_papers = 9\nstructured_mode = "prompt"\n')
    env = {"AGENTLAB_STRUCTURED_MODE": "json_object", "OPENAI_API_KEY": "sk-x", "AGENTLAB_RUNS_DIR": "elsewhere"}
    s, changes = resume_settings(p, cfg, {"max_papers": 4}, {"sandbox": "bwrap", "max_papers": 8}, env=env)
    assert (s.model, s.max_papers, s.structured_mode, s.sandbox) == ("file", 4, "json_object", "bwrap")
    assert (s.api_key, s.runs_dir) == ("sk-x", "old-runs")  # the secret from the env; the run stays where it is
    assert {c["setting"]: (c["old"], c["new"], c["source"]) for c in changes} == {
        "model": ("saved", "file", str(cfg)), "max_papers": (3, 4, "flag"), "sandbox": ("bwarp", "bwrap", "--set"),
        "structured_mode": ("auto", "json_object", "env AGENTLAB_STRUCTURED_MODE")}
    with pytest.raises(ConfigError, match="did you mean 'bwrap'"):  # the bad saved value, not fixed
        resume_settings(p, cfg, env=env)
