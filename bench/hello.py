"""The baseline app: FastAPI's hello world, served by the same server and worker count as Lapse."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
