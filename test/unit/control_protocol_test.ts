import assert from "node:assert/strict";
import {
  ControlError,
  encodeRequest,
  encodeResponse,
  errorResponse,
  okResponse,
  parseRequestLine,
  parseResponseLine,
  VERB_NAMES,
} from "../../src/daemon/control/protocol.ts";

function codeOf(line: string): string {
  try {
    parseRequestLine(line);
  } catch (error) {
    assert.ok(error instanceof ControlError, `non-ControlError thrown for ${line}: ${error}`);
    return error.code;
  }
  assert.fail(`no error for ${JSON.stringify(line)}`);
}

Deno.test("parseRequestLine: versioned JSON requests", () => {
  assert.deepEqual(parseRequestLine('{"v":1,"verb":"status","args":{}}'), {
    verb: "status",
    target: undefined,
  });
  assert.deepEqual(parseRequestLine('{"v":1,"verb":"status"}'), {
    verb: "status",
    target: undefined,
  });
  assert.deepEqual(parseRequestLine('{"v":1,"verb":"disable","args":{"target":"tcp_buffer"}}'), {
    verb: "disable",
    target: "tcp_buffer",
  });
  assert.deepEqual(
    parseRequestLine('  {"v":1,"verb":"enable","args":{"target":"net/ipv4/tcp_rmem"}}\r'),
    { verb: "enable", target: "net/ipv4/tcp_rmem" },
  );
});

Deno.test("parseRequestLine: bare verbs, bpftune style (NUL terminator, CR)", () => {
  for (const verb of VERB_NAMES.filter((v) => v !== "enable" && v !== "disable")) {
    assert.deepEqual(parseRequestLine(verb), { verb, target: undefined });
  }
  assert.deepEqual(parseRequestLine("jstatus\0"), { verb: "jstatus", target: undefined });
  assert.deepEqual(parseRequestLine("status\r"), { verb: "status", target: undefined });
  assert.deepEqual(parseRequestLine("  enable   net.ipv4.tcp_wmem "), {
    verb: "enable",
    target: "net.ipv4.tcp_wmem",
  });
});

Deno.test("parseRequestLine: netns of tunables and status, in args or as the bare second word", () => {
  assert.deepEqual(parseRequestLine('{"v":1,"verb":"tunables","args":{"netns":"all"}}'), {
    verb: "tunables",
    target: undefined,
    netns: "all",
  });
  assert.deepEqual(parseRequestLine("status cni-1f2e3d4c-aaaa"), {
    verb: "status",
    netns: "cni-1f2e3d4c-aaaa",
  });
  assert.deepEqual(parseRequestLine("status ns:4026532000\0"), {
    verb: "status",
    netns: "ns:4026532000",
  });
  for (
    const line of [
      '{"v":1,"verb":"status","args":{"netns":""}}',
      '{"v":1,"verb":"status","args":{"netns":null}}',
      '{"v":1,"verb":"status","args":{"netns":"../../x"}}',
      '{"v":1,"verb":"status","args":{"netns":".."}}',
      `{"v":1,"verb":"status","args":{"netns":"${"n".repeat(256)}"}}`,
      '{"v":1,"verb":"tuners","args":{"netns":"all"}}',
      '{"v":1,"verb":"enable","args":{"target":"tcp_buffer","netns":"all"}}',
      "rollback all",
      "status a;b",
      "status all extra",
    ]
  ) {
    assert.equal(codeOf(line), "bad-args", line);
  }
});

Deno.test("parseRequestLine: every malformed request gets a specific error code", () => {
  assert.equal(codeOf(""), "bad-request");
  assert.equal(codeOf("   "), "bad-request");
  assert.equal(codeOf("stat"), "unknown-verb"); // no prefix matching, unlike bpftune
  assert.equal(codeOf("STATUS"), "unknown-verb");
  assert.equal(codeOf("__proto__"), "unknown-verb");
  assert.equal(codeOf("toString"), "unknown-verb");
  assert.equal(codeOf("{"), "bad-json");
  assert.equal(codeOf('{"v":1,"verb":"status"'), "bad-json");
  assert.equal(codeOf("[1,2]"), "unknown-verb"); // not JSON-looking: a bare word
  assert.equal(codeOf("{}"), "unsupported-version");
  assert.equal(codeOf('{"v":2,"verb":"status"}'), "unsupported-version");
  assert.equal(codeOf('{"v":"1","verb":"status"}'), "unsupported-version");
  assert.equal(codeOf('{"v":1}'), "bad-request");
  assert.equal(codeOf('{"v":1,"verb":7}'), "bad-request");
  assert.equal(codeOf('{"v":1,"verb":"status","x":1}'), "bad-request");
  assert.equal(codeOf('{"v":1,"verb":"nope"}'), "unknown-verb");
  assert.equal(codeOf('{"v":1,"verb":"status","args":[]}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"status","args":"x"}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"status","args":{"target":"x"}}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"enable","args":{}}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"enable","args":{"target":5}}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"enable","args":{"tuner":"x"}}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"enable","args":{"target":"a;rm -rf /"}}'), "bad-args");
  assert.equal(codeOf('{"v":1,"verb":"enable","args":{"target":"../x"}}'), "bad-args");
  assert.equal(codeOf("enable"), "bad-args");
  assert.equal(codeOf("tuners now"), "bad-args");
  assert.equal(codeOf("enable a b"), "bad-args");
  assert.equal(codeOf(`enable ${"x".repeat(300)}`), "bad-args");
});

Deno.test("parseRequestLine: error messages quote input bounded and escaped", () => {
  try {
    parseRequestLine(`${"\u001b[31m".repeat(50)}`);
    assert.fail("expected an error");
  } catch (error) {
    assert.ok(error instanceof ControlError);
    assert.ok(!error.message.includes("\u001b"), "raw escape character echoed back");
    assert.ok(error.message.length < 300);
    assert.match(error.message, /supported requests are: help, tuners/);
  }
});

Deno.test("encodeResponse: one line, even when data contains newlines", () => {
  const line = encodeResponse(okResponse({ text: "a\nb\r\n", quote: '"' }));
  assert.equal(line.indexOf("\n"), line.length - 1);
  assert.deepEqual(JSON.parse(line), { v: 1, ok: true, data: { text: "a\nb\r\n", quote: '"' } });
  assert.deepEqual(JSON.parse(encodeResponse(errorResponse("busy", "later"))), {
    v: 1,
    ok: false,
    error: { code: "busy", message: "later" },
  });
});

Deno.test("encodeRequest / parseRequestLine round-trip", () => {
  const line = encodeRequest({ verb: "disable", target: "tcp_buffer" });
  assert.ok(line.endsWith("\n"));
  assert.deepEqual(parseRequestLine(line.trimEnd()), { verb: "disable", target: "tcp_buffer" });
  // No netns unless asked: a daemon from before it refuses the argument.
  assert.deepEqual(JSON.parse(encodeRequest({ verb: "status" })), {
    v: 1,
    verb: "status",
    args: {},
  });
  assert.deepEqual(JSON.parse(encodeRequest({ verb: "status", netns: "all" })).args, {
    netns: "all",
  });
});

Deno.test("parseResponseLine: accepts v1 envelopes, rejects anything else", () => {
  assert.deepEqual(parseResponseLine('{"v":1,"ok":true,"data":null}'), {
    v: 1,
    ok: true,
    data: null,
  });
  assert.equal(
    parseResponseLine('{"v":1,"ok":false,"error":{"code":"busy","message":"m"}}').ok,
    false,
  );
  for (
    const bad of [
      "null",
      "[]",
      '{"v":2,"ok":true,"data":1}',
      '{"v":1,"ok":true}',
      '{"v":1,"ok":false}',
      '{"v":1,"ok":false,"error":{"code":1,"message":"m"}}',
      '{"v":1,"ok":"yes","data":1}',
    ]
  ) {
    assert.throws(() => parseResponseLine(bad), Error, bad);
  }
});
