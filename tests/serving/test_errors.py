"""Error texts for anonymous clients: file names without the machine's folders."""

from __future__ import annotations

from serving.errors import MAX_MESSAGE, redact_paths, validation_message


def test_known_roots_become_their_names_even_with_spaces_and_colons():
    root = "/srv/my data: v2/registry"
    text = f"artifact lgbm ({root}/artifacts/x/model.txt): missing file"
    assert (
        redact_paths(text, (root,))
        == "artifact lgbm (registry/artifacts/x/model.txt): missing file"
    )


def test_other_absolute_paths_keep_only_their_last_part():
    assert redact_paths("cannot read /etc/levibot/env.yaml now") == "cannot read env.yaml now"


def test_urls_timestamps_and_ratios_are_left_alone():
    text = "see https://example.com/docs/x.html at 2026-01-01T00:00:00+00:00, 3/4 done, BTC/USDT"
    assert redact_paths(text) == text


def test_long_messages_are_cut():
    assert len(redact_paths("x" * 5000)) == MAX_MESSAGE


def test_validation_messages_echo_a_short_prefix_only():
    errors = [
        {"loc": ("query", "symbol"), "msg": "String should match pattern", "input": "Y" * 9999}
    ]
    message = validation_message(errors)
    assert message.startswith("symbol: String should match pattern (got 'YYYY")
    assert len(message) < 100
