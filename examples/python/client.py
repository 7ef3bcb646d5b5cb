"""A portal's backend calling the moderation service from Python (grpcio).

It compiles the service's protos at start (grpcio-tools ships protoc), submits a comment,
shows the error details the service sends (BadRequest, RetryInfo, QuotaFailure, ErrorInfo,
decoded with grpcio-status), then reads the feed and acknowledges what it published.

    pip install grpcio grpcio-tools grpcio-status
    python3 examples/python/client.py --server 127.0.0.1:50051 [--api-key KEY]

Each line it prints is `what: detail`; tests/clients.rs runs it against the real server.
"""

import argparse
import importlib
import os
import sys
import tempfile
import uuid

import grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_protos():
    """Generates the Python modules of proto/ into a temporary directory and imports them."""
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="moderation-py-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = ["moderation/v1/comments.proto", "moderation/v1/feed.proto"]
    code = protoc.main(
        ["protoc", f"-I{os.path.join(ROOT, 'proto')}", f"-I{include}",
         f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    )
    if code != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    return {
        name: importlib.import_module(f"moderation.v1.{name}")
        for name in ["comments_pb2", "comments_pb2_grpc", "feed_pb2", "feed_pb2_grpc"]
    }


def details(error):
    """The error details of a failed call, as (kind, text) pairs."""
    status = rpc_status.from_call(error)
    if status is None:
        return [("status", f"{error.code().name} {error.details()}")]
    out = []
    for any_detail in status.details:
        for kind, message in [
            ("bad_request", error_details_pb2.BadRequest()),
            ("retry_info", error_details_pb2.RetryInfo()),
            ("quota_failure", error_details_pb2.QuotaFailure()),
            ("error_info", error_details_pb2.ErrorInfo()),
        ]:
            if any_detail.Is(message.DESCRIPTOR):
                any_detail.Unpack(message)
                if kind == "bad_request":
                    for v in message.field_violations:
                        out.append((kind, f"{v.field} {v.description}"))
                elif kind == "retry_info":
                    out.append((kind, f"{message.retry_delay.seconds}s"))
                elif kind == "quota_failure":
                    for v in message.violations:
                        out.append((kind, v.subject))
                else:
                    out.append((kind, message.reason))
    return out


def comment(pb, key, **changes):
    fields = dict(
        article_id="thoi-su-2026-12-01",
        article_title="Giá xăng tăng từ chiều nay",
        author_name="Nguyễn Văn An",
        author_email="an.nguyen@example.com",
        body="Giá tăng liên tục thế này thì người lao động khổ quá.",
        client_ip="203.0.113.7",
        user_agent="Mozilla/5.0",
        idempotency_key=key,
    )
    fields.update(changes)
    return pb["comments_pb2"].SubmitCommentRequest(**fields)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--api-key", default=os.environ.get("MODERATION_API_KEY"))
    args = parser.parse_args()
    pb = load_protos()
    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
    channel = grpc.insecure_channel(args.server)
    comments = pb["comments_pb2_grpc"].CommentServiceStub(channel)
    run = uuid.uuid4().hex

    # A comment: its outcome. Retrying with the same idempotency key gets the same answer.
    first = comments.SubmitComment(comment(pb, f"py-{run}-1"), metadata=metadata, timeout=5)
    outcome = pb["comments_pb2"].Outcome.Name(first.outcome)
    print(f"submitted: {outcome} {first.comment_id}")

    # Every invalid field, each with why.
    try:
        comments.SubmitComment(
            comment(pb, f"py-{run}-2", body="", author_email="not-an-address"),
            metadata=metadata, timeout=5)
    except grpc.RpcError as e:
        print(f"refused: {e.code().name}")
        for kind, text in details(e):
            print(f"{kind}: {text}")

    # The same key for another comment.
    try:
        comments.SubmitComment(comment(pb, f"py-{run}-1", body="Một bình luận khác hẳn."),
                               metadata=metadata, timeout=5)
    except grpc.RpcError as e:
        print(f"refused: {e.code().name}")
        for kind, text in details(e):
            print(f"{kind}: {text}")

    # Over the quota: when to try again, and which quota.
    for k in range(3, 10):
        try:
            comments.SubmitComment(comment(pb, f"py-{run}-{k}"), metadata=metadata, timeout=5)
        except grpc.RpcError as e:
            print(f"refused: {e.code().name}")
            for kind, text in details(e):
                print(f"{kind}: {text}")
            break

    # The feed: what to publish, acknowledged once published.
    feed = pb["feed_pb2_grpc"].FeedServiceStub(channel)
    stream = feed.Subscribe(
        pb["feed_pb2"].SubscribeRequest(group="py-example", consumer="web-1", visibility_seconds=30),
        metadata=metadata, timeout=10)
    for event in stream:
        kind = pb["feed_pb2"].FeedEventKind.Name(event.kind)
        print(f"feed: {kind} {event.comment_id}")
        acked = feed.Ack(pb["feed_pb2"].AckRequest(group="py-example", cursors=[event.cursor]),
                         metadata=metadata, timeout=5)
        print(f"acknowledged: {acked.acknowledged}")
        stream.cancel()
        break


if __name__ == "__main__":
    main()
