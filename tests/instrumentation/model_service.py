"""A per-model service for the two-process test, run as its own OS process:
`python model_service.py PORT`. It exports OTLP JSON Lines into FAULTLENS_FILE_DIR."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace

from faultlens.instrumentation import configure, instrument_app, model, shutdown

configure(
    "fraud-svc",
    layout="per-model",
    default_model=model("fraud", version="1.4.2", framework="sklearn"),
)
tracer = trace.get_tracer("tests.model_service")
log = logging.getLogger("tests.model_service")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    shutdown()  # flush the batch exporters when uvicorn stops on SIGTERM


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict() -> dict[str, float]:
    with tracer.start_as_current_span("fraud.infer"):
        log.warning("fraud scored")
    return {"score": 0.3}


instrument_app(app)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
