"""The baseline of `bench_serving.py`: a bare FastAPI endpoint under the same uvicorn.

Whatever the framework and server cost per request is in this figure, so the ratio of
an app endpoint to it is what the app itself adds.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict:
    return {"ok": True}
