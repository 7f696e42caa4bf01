"""HTTP layer: translates requests into calls on `levibot.online` and back."""
