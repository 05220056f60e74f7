/**
 * The code of docs/testing.md. The `#region` blocks are what the page shows.
 *
 * Each example is an Effect that asserts what it expects, written so that a vitest file can run
 * it as it is: `it.effect("...", () => scripted)` (`@effect/vitest` provides the TestClock), or
 * `it.scopedLive(...)` for the ones that wait in real time. Run them all with
 * `npx tsx docs/examples/testing.ts`: no API key, no network beyond 127.0.0.1.
 */
// #region imports
import { Chunk, Duration, Effect, Fiber, Option, Redacted, Schedule, Schema, Stream, TestClock } from "effect"
import * as assert from "node:assert/strict"
import { Anthropic, LLM, LLMError, Message, OpenAI, Resilience, Response, Tool, Usage } from "../../src/index.js"
import { FakeProviderServer, MockLLM } from "../../src/testing/index.js"

const { Reply, SseItem } = FakeProviderServer
// #endregion
import { TestContext } from "effect"

// #region code-under-test
const getWeather = Tool.make({
  name: "get_weather",
  description: "The current weather in a city",
  parameters: Schema.Struct({ city: Schema.String })
})

/** The code under test: it asks, runs the tool the model calls, and sends the result back. */
const askWeather = (city: string) =>
  Effect.gen(function*() {
    const question = Message.user(`What is the weather in ${city}?`)
    const first = yield* LLM.complete({ messages: [question], tools: [getWeather] })
    const call = first.toolCalls[0]
    if (call === undefined) return first.content
    const result = Message.toolResult(call.id, { city, sky: "clear" })
    const second = yield* LLM.complete({
      messages: [question, Message.assistant(first.parts), Message.toolResults([result])],
      tools: [getWeather]
    })
    return second.content
  })
// #endregion

// #region mock-script
export const scripted = Effect.gen(function*() {
  const answer = yield* askWeather("Paris")
  assert.equal(answer, "Clear skies in Paris.")

  // Every request, as the code sent it
  const requests = yield* MockLLM.requests
  assert.equal(requests.length, 2)
  assert.deepEqual(requests[0]?.tools, [getWeather])
  assert.deepEqual(
    requests[1]?.messages[2],
    Message.toolResults([Message.toolResult("call_1", { city: "Paris", sky: "clear" })])
  )
  assert.equal(yield* MockLLM.remaining, 0)

  // Usage is tallied as a real provider would
  const usage = yield* LLM.usage
  assert.equal(usage.calls, 2)
  assert.equal(usage.inputTokens, 130)
  assert.equal(usage.unpricedCalls, 1) // "mock-model" has no price; "claude-sonnet-4-5" has one
}).pipe(
  Effect.provide(MockLLM.layer([
    // 1st call: a tool call (its id defaults to "call_1")
    MockLLM.toolCall("get_weather", { city: "Paris" }, { usage: { inputTokens: 50, outputTokens: 10 } }),
    // 2nd call: text, answered by a model with a known price
    MockLLM.text("Clear skies in Paris.", { model: "claude-sonnet-4-5", usage: { inputTokens: 80, outputTokens: 6 } })
  ]))
)
// #endregion

// #region mock-reply
// One reply with everything: thinking with its signature, text, tool calls, usage, model, ids
const rich = MockLLM.reply({
  thinking: "The user wants the weather.",
  thinkingSignature: "sig-1",
  text: "Let me check.",
  toolCalls: [{ id: "toolu_1", name: "get_weather", input: { city: "Paris" } }],
  usage: { inputTokens: 1_200, cacheReadTokens: 800, outputTokens: 300 },
  model: "claude-sonnet-4-5-20250929",
  rawFinishReason: "tool_use",
  requestId: "req_1"
})

export const sameReply = Effect.gen(function*() {
  const llm = yield* LLM.LLM
  const completed = yield* llm.complete({ messages: [Message.user("Weather?")] })
  const collected = yield* Response.collect(llm.stream({ messages: [Message.user("Weather?")] }))
  assert.deepEqual(collected, completed) // complete and collect(stream) agree
  assert.equal(completed.finishReason, "tool_calls")
  assert.deepEqual(completed.parts[0], {
    _tag: "Thinking",
    thinking: "The user wants the weather.",
    signature: "sig-1"
  })
}).pipe(Effect.provide(MockLLM.layer([rich, rich])))
// #endregion

// #region mock-failures
const ask: LLM.CompletionRequest = { messages: [Message.user("Hi")] }

const rateLimited = new LLMError.RateLimitError({
  provider: "mock",
  message: "slow down",
  status: 429,
  retryAfter: Option.some(Duration.seconds(2))
})

export const failures = Effect.gen(function*() {
  // A call that fails with a typed error
  const error = yield* Effect.flip(LLM.complete(ask))
  assert.equal(error._tag, "RateLimitError")
  assert.deepEqual(LLMError.retryAfter(error), Option.some(Duration.seconds(2)))

  // A stream that emits two pieces, then breaks
  const seen: Array<string> = []
  const broken = yield* LLM.stream(ask).pipe(
    Response.textDeltas,
    Stream.runForEach((text) => Effect.sync(() => seen.push(text))),
    Effect.flip
  )
  assert.deepEqual(seen, ["Hel", "lo"])
  assert.equal(broken._tag, "ConnectionError")

  // Both reached the "provider": two calls, two failures, and the usage the stream reported before it broke
  const { calls, failures, inputTokens, unpricedCalls } = yield* LLM.usage
  assert.deepEqual({ calls, failures, inputTokens, unpricedCalls }, {
    calls: 2,
    failures: 2,
    inputTokens: 12,
    unpricedCalls: 1 // tokens reported on "mock-model", which has no price
  })
}).pipe(
  Effect.provide(MockLLM.layer([
    MockLLM.fail(rateLimited),
    MockLLM.chunks(["Hel", "lo"], {
      failWith: new LLMError.ConnectionError({ provider: "mock", message: "socket closed" }),
      usage: { inputTokens: 12 } // what the provider had reported before it broke
    })
  ]))
)
// #endregion

// #region mock-function
// A script can be a function of the request and the call's index (it never runs out)
const Echo = MockLLM.layer((request, index) => {
  const first = request.messages[0]?.content[0]
  return MockLLM.text(`${index}: ${first?._tag === "Text" ? first.text.toUpperCase() : "?"}`)
})

export const echoed = Effect.gen(function*() {
  assert.equal((yield* LLM.complete({ messages: [Message.user("ping")] })).content, "0: PING")
  assert.equal((yield* LLM.complete({ messages: [Message.user("pong")] })).content, "1: PONG")
}).pipe(Effect.provide(Echo))
// #endregion

// #region test-clock
// Resilience.retry waits the error's retryAfter (2 s) on Effect's Clock: the TestClock drives it
export const retryOnTestClock = Effect.gen(function*() {
  const fiber = yield* Effect.fork(LLM.complete(ask).pipe(Resilience.retry()))
  yield* TestClock.adjust("1999 millis")
  assert.equal((yield* MockLLM.requests).length, 1) // still waiting
  yield* TestClock.adjust("1 millis")
  assert.equal((yield* Fiber.join(fiber)).content, "ok")
  assert.equal((yield* MockLLM.requests).length, 2)
}).pipe(Effect.provide(MockLLM.layer([MockLLM.fail(rateLimited), MockLLM.text("ok")])))

// The mock's latency is waited on the Clock too
export const latency = Effect.gen(function*() {
  const fiber = yield* Effect.fork(LLM.complete(ask))
  yield* TestClock.adjust("3 seconds")
  assert.equal(fiber.unsafePoll(), null) // not answered yet
  yield* TestClock.adjust("2 seconds")
  assert.equal((yield* Fiber.join(fiber)).content, "slow")
}).pipe(Effect.provide(MockLLM.layer([MockLLM.text("slow")], { latency: "5 seconds" })))
// #endregion

// #region fake-server
// The real Anthropic layer, through the official SDK, over real HTTP to 127.0.0.1
export const throughTheSdk = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make() // closed with the scope
  const llm = yield* Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl })
  const reply = Reply.scripted({
    thinking: { text: ["Sunny ", "is likely."], signature: "sig-abc" },
    text: ["It is ", "sunny."],
    usage: { inputTokens: 120, cacheReadTokens: 100, outputTokens: 8 }
  })
  yield* server.enqueue(reply, reply) // one per request, first in first out

  const completed = yield* llm.complete({ messages: [Message.user("Weather?")], maxTokens: 256 })
  const streamed = yield* Response.collect(llm.stream({ messages: [Message.user("Weather?")], maxTokens: 256 }))
  assert.equal(completed.content, "It is sunny.")
  assert.deepEqual(streamed.usage, completed.usage)
  assert.deepEqual(completed.usage, Usage.tokens({ inputTokens: 120, cacheReadTokens: 100, outputTokens: 8 }))

  // What the server received
  const [first, second] = yield* server.requests
  assert.equal(first?.path, "/v1/messages")
  assert.deepEqual(first?.body, {
    model: "claude-sonnet-4-6",
    max_tokens: 256,
    messages: [{ role: "user", content: [{ type: "text", text: "Weather?" }] }],
    stream: false
  })
  assert.equal((second?.body as { stream?: boolean }).stream, true)
}).pipe(Effect.scoped)
// #endregion

// #region fake-faults
export const faults = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const llm = yield* OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl })
  const text = ["one ", "two ", "three ", "four"]
  yield* server.enqueue(
    // An HTTP error in the provider's own format, with headers
    Reply.openaiError(429, { message: "Slow down", type: "requests", code: "rate_limit_exceeded" }, {
      "retry-after": "3",
      "x-ratelimit-remaining-requests": "0"
    }),
    Reply.scripted({ text }, { dropAfterEvents: 3 }), // the socket is destroyed after 3 SSE events
    Reply.scripted({ text }, { omitTerminal: true }), // the body ends cleanly, without finish_reason and [DONE]
    Reply.scripted({ text }, { errorAfterEvents: { count: 3, message: "upstream failed" } }), // an error event
    Reply.text("{\"id\": ", { contentType: "application/json" }) // a body that is not JSON
  )
  const limited = yield* Effect.flip(llm.complete(ask))
  assert.equal(limited._tag, "RateLimitError")
  assert.deepEqual(LLMError.retryAfter(limited), Option.some(Duration.seconds(3)))

  const failureOf = (stream: Stream.Stream<Response.StreamEvent, LLMError.LLMError>) =>
    stream.pipe(Stream.runDrain, Effect.flip, Effect.map((error) => error._tag))
  assert.equal(yield* failureOf(llm.stream(ask)), "ConnectionError") // dropped
  assert.equal(yield* failureOf(llm.stream(ask)), "ConnectionError") // truncated
  assert.equal(yield* failureOf(llm.stream(ask)), "ProviderUnavailableError") // error event
  assert.equal((yield* Effect.flip(llm.complete(ask)))._tag, "MalformedResponseError")
}).pipe(Effect.scoped)
// #endregion

// #region fake-abort
// Waits in real time: run it with it.scopedLive
export const aborts = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const llm = yield* Anthropic.make({ apiKey: Redacted.make("sk-ant-test"), baseUrl: server.anthropicBaseUrl })
  yield* server.enqueue(
    Reply.hang, // accepts the request and never answers
    Reply.scripted({ text: Array.from({ length: 50 }, (_, i) => `w${i} `) }, { delayBetweenEventsMillis: 50 })
  )
  // Interrupting the call, once the server has its request, aborts that request
  const fiber = yield* Effect.fork(llm.complete(ask))
  yield* Effect.repeat(server.requests, { until: (requests) => requests.length === 1, schedule: Schedule.spaced(5) })
  yield* Fiber.interrupt(fiber)
  yield* server.awaitAborted(1)

  // A consumer that stops early aborts the stream's request
  yield* llm.stream(ask).pipe(Response.textDeltas, Stream.take(3), Stream.runDrain)
  yield* server.awaitAborted(2)
  assert.equal(yield* server.abortedResponses, 2)
  assert.deepEqual(yield* llm.usage.pipe(Effect.map(({ calls, failures }) => ({ calls, failures }))), {
    calls: 2,
    failures: 2
  })
}).pipe(Effect.scoped)
// #endregion

// #region fake-idle
// The idle timer between two reads of a streamed body runs on Effect's Clock: TestClock drives it,
// while the server itself (and the SDK's wait for headers) run in real time.
const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))

export const stalled = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const llm = yield* Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    timeout: "30 seconds"
  })
  yield* server.enqueue(Reply.sse([SseItem.delay(60_000)])) // headers, then silence
  const fiber = yield* llm.stream(ask).pipe(Stream.runDrain, Effect.flip, Effect.fork)
  // Let the real I/O happen until the body read has set its idle timer on the TestClock
  yield* Effect.repeat(Effect.zipLeft(TestClock.sleeps(), realPause), { until: (sleeps) => Chunk.size(sleeps) > 0 })
  yield* TestClock.adjust("30 seconds")
  const error = yield* Fiber.join(fiber)
  assert.equal(error._tag, "TimeoutError")
  assert.match(error.message, /silent for 30s/)
}).pipe(Effect.scoped)
// #endregion

// -----------------------------------------------------------------------------
// main: run every example, as @effect/vitest would (TestContext gives the TestClock)
// -----------------------------------------------------------------------------

const examples: ReadonlyArray<readonly [string, Effect.Effect<void, unknown>]> = [
  ["MockLLM: a scripted conversation", scripted],
  ["MockLLM: complete and collect(stream) agree", sameReply],
  ["MockLLM: failures", failures],
  ["MockLLM: a function script", echoed],
  ["MockLLM + TestClock: retry-after", retryOnTestClock],
  ["MockLLM + TestClock: latency", latency],
  ["FakeProviderServer: through the SDK", throughTheSdk],
  ["FakeProviderServer: faults", faults],
  ["FakeProviderServer: idle timeout on the TestClock", stalled]
]

// One run per example: `Effect.provide(TestContext.TestContext)` leaves the TestClock in the fiber
// that provided it, so examples that wait in real time must not run in that fiber afterwards.
const main = async () => {
  for (const [name, example] of examples) {
    await Effect.runPromise(example.pipe(Effect.provide(TestContext.TestContext)))
    console.log(`ok  ${name}`)
  }
  await Effect.runPromise(aborts) // real clock
  console.log("ok  FakeProviderServer: aborts (real clock)")
}

main().then(
  () => console.log("testing: done"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
