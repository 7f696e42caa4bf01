"""LeviBot: ML trading signals on crypto bars."""
