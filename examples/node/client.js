// A portal's backend calling the moderation service from Node (@grpc/grpc-js).
//
// It loads the service's protos at start, submits a comment, shows the error details the
// service sends (BadRequest, RetryInfo, QuotaFailure, ErrorInfo: the google.rpc.Status in the
// `grpc-status-details-bin` trailer, decoded with protobufjs), then reads the feed and
// acknowledges what it published.
//
//   cd examples/node && npm install
//   node client.js --server 127.0.0.1:50051 [--api-key KEY]
//
// Each line it prints is `what: detail`; tests/clients.rs runs it against the real server.
"use strict";

const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");
const googleProtos = require("google-proto-files");

const root = path.resolve(__dirname, "..", "..");
const argument = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
};
const server = argument("--server", "127.0.0.1:50051");
const apiKey = argument("--api-key", process.env.MODERATION_API_KEY);

const definition = loader.loadSync(
  ["moderation/v1/comments.proto", "moderation/v1/feed.proto"],
  { includeDirs: [path.join(root, "proto")], keepCase: true, enums: String, longs: Number, defaults: true },
);
const v1 = grpc.loadPackageDefinition(definition).moderation.v1;

// google.rpc.Status and the error details, from the googleapis protos.
const rpc = protobuf.loadSync([
  googleProtos.getProtoPath("rpc", "status.proto"),
  googleProtos.getProtoPath("rpc", "error_details.proto"),
]);
const Status = rpc.lookupType("google.rpc.Status");
const detailTypes = {
  "type.googleapis.com/google.rpc.BadRequest": "bad_request",
  "type.googleapis.com/google.rpc.RetryInfo": "retry_info",
  "type.googleapis.com/google.rpc.QuotaFailure": "quota_failure",
  "type.googleapis.com/google.rpc.ErrorInfo": "error_info",
};

function details(error) {
  const raw = error.metadata && error.metadata.get("grpc-status-details-bin")[0];
  if (!raw) return [["status", `${error.code} ${error.details}`]];
  const status = Status.decode(raw);
  const out = [];
  for (const any of status.details) {
    const kind = detailTypes[any.type_url || any.typeUrl];
    if (!kind) continue;
    const type = rpc.lookupType((any.type_url || any.typeUrl).split("/")[1]);
    const message = type.decode(any.value);
    if (kind === "bad_request") {
      for (const v of message.fieldViolations) out.push([kind, `${v.field} ${v.description}`]);
    } else if (kind === "retry_info") {
      out.push([kind, `${Number(message.retryDelay.seconds)}s`]);
    } else if (kind === "quota_failure") {
      for (const v of message.violations) out.push([kind, v.subject]);
    } else {
      out.push([kind, message.reason]);
    }
  }
  return out;
}

function comment(key, changes = {}) {
  return {
    article_id: "thoi-su-2026-12-01",
    article_title: "Giá xăng tăng từ chiều nay",
    author_name: "Nguyễn Văn An",
    author_email: "an.nguyen@example.com",
    body: "Giá tăng liên tục thế này thì người lao động khổ quá.",
    client_ip: "203.0.113.7",
    user_agent: "Mozilla/5.0",
    idempotency_key: key,
    ...changes,
  };
}

const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code);

function call(client, method, request) {
  const metadata = new grpc.Metadata();
  if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
  const deadline = new Date(Date.now() + 5000);
  return new Promise((resolve, reject) =>
    client[method](request, metadata, { deadline }, (error, answer) => (error ? reject(error) : resolve(answer))));
}

function refused(error) {
  console.log(`refused: ${codeName(error.code)}`);
  for (const [kind, text] of details(error)) console.log(`${kind}: ${text}`);
}

async function main() {
  const credentials = grpc.credentials.createInsecure();
  const comments = new v1.CommentService(server, credentials);
  const run = crypto.randomUUID();

  const first = await call(comments, "SubmitComment", comment(`js-${run}-1`));
  console.log(`submitted: ${first.outcome} ${first.comment_id}`);

  await call(comments, "SubmitComment", comment(`js-${run}-2`, { body: "", author_email: "not-an-address" }))
    .catch(refused);
  await call(comments, "SubmitComment", comment(`js-${run}-1`, { body: "Một bình luận khác hẳn." }))
    .catch(refused);
  for (let k = 3; k < 10; k++) {
    const over = await call(comments, "SubmitComment", comment(`js-${run}-${k}`)).then(() => null, (e) => e);
    if (over) { refused(over); break; }
  }

  const feed = new v1.FeedService(server, credentials);
  const metadata = new grpc.Metadata();
  if (apiKey) metadata.set("authorization", `Bearer ${apiKey}`);
  const stream = feed.Subscribe({ group: "js-example", consumer: "web-1", visibility_seconds: 30 }, metadata);
  await new Promise((resolve, reject) => {
    stream.once("data", async (event) => {
      console.log(`feed: ${event.kind} ${event.comment_id}`);
      const acked = await call(feed, "Ack", { group: "js-example", cursors: [event.cursor] });
      console.log(`acknowledged: ${acked.acknowledged}`);
      stream.cancel();
      resolve();
    });
    stream.once("error", (e) => (e.code === grpc.status.CANCELLED ? resolve() : reject(e)));
  });
  comments.close();
  feed.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
