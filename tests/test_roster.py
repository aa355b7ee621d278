"""Roster validation: independence, shipped rosters, unknown models, missing keys."""

from __future__ import annotations

import pytest

from quorum.llm.client import check_api_keys, check_roster_models
from quorum.domain.edit_format import EditFormat
from quorum.domain.roster import Roster, RosterError, StageModel
from quorum.inputs.rosters import load_roster


def roster(implementer: str, *reviewers: str) -> dict:
    return {"planner": {"model": "anthropic/claude-sonnet-4-5"}, "implementer": {"model": implementer},
            "reviewers": [{"model": r} for r in reviewers]}  # fmt: skip


def test_reviewer_sharing_provider_with_implementer_is_refused_naming_models(tmp_path):
    path = tmp_path / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump(roster("openai/gpt-5-mini", "openai/gpt-5", "gemini/gemini-2.5-flash")))
    with pytest.raises(RosterError) as err:
        load_roster(path)
    assert "openai/gpt-5" in str(err.value) and "openai/gpt-5-mini" in str(err.value)
    assert "shares provider 'openai'" in str(err.value)


def test_two_reviewers_sharing_a_provider_are_refused():
    with pytest.raises(ValueError, match="reviewers gemini/gemini-2.5-flash and gemini/gemini-2.5-pro share provider 'gemini'"):
        Roster.model_validate(roster("deepseek/deepseek-chat", "gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro"))


def test_fewer_than_two_reviewers_refused():
    with pytest.raises(ValueError):
        Roster.model_validate(roster("deepseek/deepseek-chat", "gemini/gemini-2.5-flash"))


def test_scripted_models_are_independent_by_the_provider_they_simulate():
    scripted = load_roster("scripted")
    assert scripted.simulated
    assert scripted.implementer.provider == "deepseek"
    assert [r.provider for r in scripted.reviewers] == ["openai", "gemini"]
    with pytest.raises(ValueError, match="shares provider 'deepseek'"):
        Roster.model_validate({
            "planner": {"model": "scripted/p", "priced_as": "anthropic/claude-sonnet-4-5"},
            "implementer": {"model": "scripted/i", "priced_as": "deepseek/deepseek-chat"},
            "reviewers": [{"model": "scripted/r1", "priced_as": "deepseek/deepseek-chat"},
                          {"model": "scripted/r2", "priced_as": "gemini/gemini-2.5-flash"}],
        })  # fmt: skip


def test_scripted_model_must_declare_priced_as():
    with pytest.raises(ValueError, match="priced_as"):
        StageModel(model="scripted/x")


def test_model_string_needs_provider_prefix():
    with pytest.raises(ValueError, match="provider prefix"):
        StageModel(model="gpt-5-mini")


def test_shipped_rosters_load_and_price():
    for name in ("default", "scripted"):
        loaded = load_roster(name)
        check_roster_models(loaded)
        assert len(loaded.reviewers) >= 2


def test_unknown_model_string_is_refused_by_name():
    bad = Roster.model_validate(roster("deepseek/deepseek-chat-nonexistent-9", "openai/gpt-5-mini", "gemini/gemini-2.5-flash"))
    with pytest.raises(RosterError, match="deepseek/deepseek-chat-nonexistent-9"):
        check_roster_models(bad)


def test_unknown_shipped_roster_name_lists_choices():
    with pytest.raises(RosterError, match="default, gold, scripted"):
        load_roster("nope")


def test_missing_api_keys_are_named(monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    with pytest.raises(RosterError) as err:
        check_api_keys(load_roster("default"))
    message = str(err.value)
    assert "ANTHROPIC_API_KEY" in message and "DEEPSEEK_API_KEY" in message and "GEMINI_API_KEY" in message
    assert "OPENAI_API_KEY" not in message


def test_scripted_roster_needs_no_keys(monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    check_api_keys(load_roster("scripted"))


def test_edit_format_defaults_by_model_family_and_scripted_models_write_diffs():
    assert load_roster("scripted").implementer.resolved_edit_format == EditFormat.udiff
    assert load_roster("default").implementer.resolved_edit_format == EditFormat.search_replace  # deepseek
    assert StageModel(model="anthropic/claude-sonnet-4-5").resolved_edit_format == EditFormat.udiff
    assert StageModel(model="ollama/llama3.2:3b").resolved_edit_format == EditFormat.whole_file
    chosen = StageModel(model="deepseek/deepseek-chat", edit_format="whole_file")
    assert chosen.edit_format == chosen.resolved_edit_format == EditFormat.whole_file


def test_unknown_edit_format_is_refused_at_load_naming_the_choices(tmp_path):
    import yaml

    data = roster("deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash")
    data["implementer"]["edit_format"] = "patchy"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RosterError) as err:
        load_roster(path)
    assert "implementer.edit_format: unknown edit format 'patchy' for deepseek/deepseek-chat" in str(err.value)
    assert "use one of udiff, search_replace, whole_file" in str(err.value)
    data["implementer"]["edit_format"] = "search_replace"
    path.write_text(yaml.safe_dump(data))
    assert load_roster(path).implementer.edit_format == EditFormat.search_replace


def test_edit_format_is_refused_where_no_prompt_would_use_it():
    data = roster("deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash")
    data["reviewers"][0]["edit_format"] = "udiff"
    with pytest.raises(ValueError, match="edit_format is set for reviewer openai/gpt-5-mini: only the implementer"):
        Roster.model_validate(data)
    data["reviewers"][0].pop("edit_format")
    data["implementer"]["fallbacks"] = [{"model": "mistral/mistral-small-latest", "edit_format": "udiff"}]
    with pytest.raises(ValueError, match="implementer deepseek/deepseek-chat's fallback mistral/mistral-small-latest"):
        Roster.model_validate(data)
# ------------------------------------------------------------------------- localizer and context budgets


def test_localizer_and_context_budgets_per_model():
    default = load_roster("default")
    assert default.localizer is not None and default.localizer.model == "gemini/gemini-2.5-flash"
    assert [stage for stage, _ in default.stage_models()] == ["localize", "plan", "implement", "review", "review"]
    assert default.planner.context_budget("plan") == 12_000 and default.implementer.context_budget("implement") == 16_000
    scripted = load_roster("scripted")
    assert scripted.localizer.model == "scripted/gemini-2.5-flash" and scripted.localizer.pricing_model == "gemini/gemini-2.5-flash"
    assert scripted.localizer.context_budget("localize") == 16_000  # the stage default
    custom = Roster.model_validate({**roster("deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash"),
                                    "implementer": {"model": "deepseek/deepseek-chat", "context_tokens": 3000}})  # fmt: skip
    assert custom.localizer is None and custom.implementer.context_budget("implement") == 3000
    assert [stage for stage, _ in custom.stage_models()] == ["plan", "implement", "review", "review"]


def test_the_localizer_is_not_a_reviewer_so_it_may_share_any_provider():
    data = roster("deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash")
    shared = Roster.model_validate({**data, "localizer": {"model": "deepseek/deepseek-chat"}})
    assert shared.localizer.provider == shared.implementer.provider == "deepseek"
    assert "deepseek" in shared.providers()
    with pytest.raises(ValueError, match="shares provider 'openai'"):  # the reviewers' rule is unchanged
        Roster.model_validate({**roster("openai/gpt-5", "openai/gpt-5-mini", "gemini/gemini-2.5-flash"),
                               "localizer": {"model": "gemini/gemini-2.5-flash"}})  # fmt: skip


def test_context_budgets_are_validated_when_the_roster_is_loaded(tmp_path):
    import yaml

    with pytest.raises(ValueError, match="context_tokens"):
        StageModel(model="openai/gpt-5-mini", context_tokens=10)
    with pytest.raises(ValueError, match="cannot set context_tokens"):
        StageModel(model="openai/gpt-5-mini", fallbacks=[{"model": "openai/gpt-5", "context_tokens": 5000}])
    # deepseek-chat takes 131,072 input tokens: a 200k context cannot fit it, nor its fallback's window
    data = roster("deepseek/deepseek-chat", "openai/gpt-5-mini", "gemini/gemini-2.5-flash")
    data["implementer"] = {"model": "deepseek/deepseek-chat", "context_tokens": 200_000}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RosterError, match=r"implement deepseek/deepseek-chat: context_tokens 200000 .* input window of 131072"):
        check_roster_models(load_roster(path))
    data["implementer"] = {"model": "gemini/gemini-2.5-pro", "context_tokens": 200_000,
                           "fallbacks": [{"model": "deepseek/deepseek-chat"}]}  # fmt: skip
    data["reviewers"] = [{"model": "openai/gpt-5-mini"}, {"model": "anthropic/claude-haiku-4-5"}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RosterError, match="implement deepseek/deepseek-chat: context_tokens 200000"):
        check_roster_models(load_roster(path))
