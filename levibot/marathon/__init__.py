"""The 48-hour canary-paper marathon: managed server, replay, checks, evaluation."""
