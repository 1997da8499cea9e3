// A client that is not ours: loads protos/ as published and calls a running triage server.
// Run by tests/test_node_client.py, which starts the server and sets TRIAGE_TARGET.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const protos = path.resolve(here, "../../protos");
const require = createRequire(import.meta.url);
const healthProto = require.resolve("grpc-health-check/proto/health/v1/health.proto");
const target = process.env.TRIAGE_TARGET;
assert.ok(target, "set TRIAGE_TARGET=host:port of a running triage server");

const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const triage = grpc.loadPackageDefinition(
  protoLoader.loadSync("triage/v1/triage.proto", { ...options, includeDirs: [protos] }),
).triage.v1;
const health = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, options)).grpc.health.v1;

const client = new triage.TriageService(target, grpc.credentials.createInsecure());
const healthClient = new health.Health(target, grpc.credentials.createInsecure());

function call(stub, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    stub[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

test("Classify returns a label, calibrated scores and the model version", async () => {
  const r = await call(client, "Classify", {
    text: "A caller claiming to be from the bank told me to move my savings",
    report_id: "node-1",
    max_explanation_terms: 3,
  });
  assert.equal(r.report_id, "node-1");
  assert.ok(r.label.length > 0);
  assert.equal(r.scores[0].label, r.label);
  const total = r.scores.reduce((sum, s) => sum + s.probability, 0);
  assert.ok(Math.abs(total - 1) < 1e-6, `scores sum to ${total}`);
  assert.ok(r.model_version.length > 0);
  assert.ok(r.explanation.length <= 3);
});

test("ClassifyBatch keeps order and reports a bad item on its own", async () => {
  const r = await call(client, "ClassifyBatch", {
    reports: [
      { text: "Someone hacked into our office server", report_id: "a" },
      { text: "   ", report_id: "b" },
      { text: "Burglars took a bike from the shed", report_id: "c" },
    ],
  });
  assert.deepEqual(r.results.map((x) => x.report_id), ["a", "b", "c"]);
  assert.ok(r.results[0].label && r.results[2].label);
  assert.equal(r.results[1].error.code, grpc.status.INVALID_ARGUMENT);
  assert.match(r.results[1].error.message, /empty/);
});

test("an empty report is INVALID_ARGUMENT with a readable message", async () => {
  await assert.rejects(call(client, "Classify", { text: "" }), (err) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /text is empty/);
    return true;
  });
});

test("reasons, language, evidence offsets and the items of a listing come back", async () => {
  const listing = [
    "Council news digest",
    "",
    "Library opening hours change over the holidays",
    "By Dana Whitlock",
    "03.02.2024",
    "The central library will close early on Christmas Eve and reopen on the second of January with longer evening hours for students.",
    "",
    "Teenager arrested after school network hacked",
    "By Priya Osei",
    "02.02.2024",
    "A 16-year-old has been arrested on suspicion of computer misuse after the school's network was broken into and pupils' records were copied.",
    "",
    "Bin collections move to Thursdays from March",
    "By Dana Whitlock",
    "01.02.2024",
    "Households on the east side of town will have their recycling and general waste collected on Thursdays from the first week of March.",
  ].join("\n");
  const [single, foreign, digest] = await Promise.all([
    call(client, "Classify", { text: "My email account was hacked and the password changed", report_id: "n1" }),
    call(client, "Classify", { text: "Ktoś podszył się pod pracownika banku i ukradł moje oszczędności z konta.", report_id: "n2" }),
    call(client, "Classify", { text: listing, report_id: "n3" }),
  ]);
  const text = "My email account was hacked and the password changed";
  assert.equal(single.language, "en");
  assert.ok(single.evidence_sentences.length > 0 && single.evidence_terms.length > 0);
  for (const span of single.evidence_sentences) {
    assert.ok(0 <= span.start && span.start < span.end && span.end <= text.length);
  }
  for (const term of single.evidence_terms) {
    assert.equal(text.slice(term.start, term.end).toLowerCase().split(/\s+/).join(" "), term.term);
  }
  assert.equal(foreign.language, "pl");
  assert.ok(foreign.needs_review);
  assert.ok(foreign.review_reasons.includes("REVIEW_REASON_NON_ENGLISH"), foreign.review_reasons.join());
  assert.equal(digest.segments.length, 3);
  for (const item of digest.segments) {
    assert.ok(item.label.length > 0 && item.end > item.start);
  }
  assert.ok(listing.slice(digest.segments[1].start, digest.segments[1].end).startsWith("Teenager arrested"));
  assert.equal(digest.needs_review, digest.review_reasons.length > 0);
});

test("the standard health service says SERVING", async () => {
  const overall = await call(healthClient, "Check", { service: "" });
  assert.equal(overall.status, "SERVING");
  const named = await call(healthClient, "Check", { service: "triage.v1.TriageService" });
  assert.equal(named.status, "SERVING");
});

test.after(() => {
  client.close();
  healthClient.close();
});
