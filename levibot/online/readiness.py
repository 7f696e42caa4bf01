"""What a caller on an event loop needs to know: can this request be answered from memory?"""


class NeedsWork(Exception):
    """Answering needs work that may block (a file read, a registry load, a model call,
    a paper book acting under its lock): run the call again in a worker thread.

    Raised by `PredictionService.predict(..., ready_only=True)` before any side effect.
    """
