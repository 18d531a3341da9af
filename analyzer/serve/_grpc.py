"""OTLP/gRPC into the same receiver as OTLP/HTTP: the default protocol of several SDKs.

The TraceService and LogsService ``Export`` methods take the raw request bytes (no
deserializer: decoding runs on a worker thread, as for HTTP) and answer only after the
rows are committed. Status codes, as the OTLP specification maps them:

- UNAUTHENTICATED without the bearer token (``authorization`` metadata) when one is set;
- RESOURCE_EXHAUSTED for a message over the limit (gRPC checks it after decompression;
  with no RetryInfo the specification makes it permanent: the same message fails again);
- INVALID_ARGUMENT when the message does not decode;
- UNAVAILABLE with RetryInfo (1 s, as HTTP's Retry-After) when the write queue is full
  (the specification's throttling signal) or the store write failed (retryable: nothing
  was acknowledged). RetryInfo goes in the ``grpc-status-details-bin`` status (where Go
  and Java exporters read it) and as ``google.rpc.retryinfo-bin`` (Python's).
Invalid records beside good ones are counted in the response's ``partial_success``.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ._receiver import Busy, Receiver, StoreFailed, TooLarge, accept

__all__ = ["grpc_server"]

_SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}


RETRY_S = 1  # the delay a throttled exporter is asked to wait (HTTP: Retry-After: 1)


def _retry_later(message: str) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    """UNAVAILABLE with RetryInfo: the arguments of ``context.abort``."""
    retry = RetryInfo(retry_delay=Duration(seconds=RETRY_S))
    detail = AnyMessage()
    detail.Pack(retry)
    code = grpc.StatusCode.UNAVAILABLE
    status = Status(code=code.value[0], message=message, details=[detail])
    return (
        code,
        message,
        (
            ("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", retry.SerializeToString()),
        ),
    )


def _response(signal: str, rejected: int, message: str) -> Any:
    if signal == "traces":
        msg: Any = ExportTraceServiceResponse()
        if rejected:
            msg.partial_success.rejected_spans = rejected
    else:
        msg = ExportLogsServiceResponse()
        if rejected:
            msg.partial_success.rejected_log_records = rejected
    if rejected:
        msg.partial_success.error_message = message
    return msg


def _handler(
    receiver: Receiver, signal: str, *, token: str | None, max_body: int
) -> grpc.RpcMethodHandler:
    async def export(body: bytes, context: grpc.aio.ServicerContext) -> Any:
        if token is not None:
            auth = dict(context.invocation_metadata() or ()).get("authorization")
            if auth != f"Bearer {token}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
        try:
            rejected, message = await accept(
                receiver,
                [body],
                source="otlp-grpc",
                path=f"/{_SERVICES[signal]}/Export",
                signal=signal,
                is_json=False,
                encoding="",  # gRPC inflated it, within max_receive_message_length
                max_body=max_body,
            )
        except TooLarge:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"over {max_body} bytes")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Busy:
            await context.abort(*_retry_later("write queue full, retry later"))
        except StoreFailed as exc:
            await context.abort(*_retry_later(str(exc)))
        return _response(signal, rejected, message)

    return grpc.unary_unary_rpc_method_handler(
        export, response_serializer=lambda m: m.SerializeToString()
    )


def grpc_server(
    receiver: Receiver, *, host: str, port: int, token: str | None, max_body: int
) -> grpc.aio.Server:
    """An OTLP/gRPC server (not started) on ``host:port`` feeding ``receiver``; it runs
    on the event loop that starts it (the HTTP server's)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_body),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
        ]
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                service, {"Export": _handler(receiver, signal, token=token, max_body=max_body)}
            )
            for signal, service in _SERVICES.items()
        ]
    )
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {host}:{port}")
    return server
