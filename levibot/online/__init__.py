"""Serving logic usable without HTTP: the persistent online state of the server.

Shadow logs of predictions and paper trades (daily JSONL files), the kill switch,
the audit log and the paper books. Every piece lives in files shared by all server
worker processes, is safe under concurrent writers (threads and processes), and takes
an injectable ``clock`` so a replay can drive simulated time. Nothing here imports
FastAPI or the ``serving`` package.
"""
