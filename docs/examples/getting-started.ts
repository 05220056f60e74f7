/**
 * The code of docs/getting-started.md, docs/errors.md and docs/usage-and-cost.md. The `#region`
 * blocks are what the pages show.
 *
 * Run it with `npx tsx docs/examples/getting-started.ts`. It needs no API key: `main` (at the end)
 * starts FakeProviderServer on 127.0.0.1 and runs every snippet through the real Anthropic and
 * OpenAI layers (the official SDKs, real HTTP, real SSE), scripting the replies first.
 */
// #region imports
import { Config, Console, Duration, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
import {
  Anthropic,
  LLM,
  LLMError,
  Message,
  OpenAI,
  Pricing,
  Resilience,
  Response,
  Tool,
  Usage
} from "../../src/index.js"
// #endregion
import { ConfigProvider } from "effect"
import * as assert from "node:assert/strict"
import { FakeProviderServer } from "../../src/testing/index.js"

// #region first-call
const hello = Effect.gen(function*() {
  const reply = yield* LLM.complete({ messages: [Message.user("Say hello in five words")], maxTokens: 64 })
  yield* Console.log(reply.content)
  yield* Console.log(reply.model, reply.finishReason, reply.usage.outputTokens, reply.costUsd)
})

// Reads ANTHROPIC_API_KEY through Effect's Config (by default from the environment)
const AnthropicLive = Anthropic.layerConfig()

// Effect.runPromise(hello.pipe(Effect.provide(AnthropicLive)))
// #endregion

// #region layers
// Options as plain values
const ClaudeHaiku = Anthropic.layer({
  apiKey: Redacted.make("sk-ant-..."),
  defaultModel: "claude-haiku-4-5",
  maxTokens: 1024,
  timeout: "2 minutes"
})

// Options through Config: OPENAI_API_KEY is required, OPENAI_MODEL and OPENAI_BASE_URL are optional
const OpenAILive = OpenAI.layerConfig({
  apiKey: Config.redacted("OPENAI_API_KEY"),
  defaultModel: Config.string("OPENAI_MODEL").pipe(Config.withDefault("gpt-4o-mini")),
  baseUrl: Config.string("OPENAI_BASE_URL").pipe(Config.withDefault("https://api.openai.com/v1"))
})
// #endregion

// #region request
const request: LLM.CompletionRequest = {
  messages: [Message.user("Name three prime numbers")],
  model: "claude-haiku-4-5", // default: the layer's defaultModel
  system: "Answer in one line.", // the system prompt is a field, not a message
  maxTokens: 200, // default: the layer's maxTokens (4096)
  temperature: 0.2,
  topP: 0.9,
  stopSequences: ["\n\n"],
  metadata: { userId: "user-42" } // Anthropic metadata.user_id, OpenAI user
}
// #endregion

// #region service
const inspect = Effect.gen(function*() {
  const llm = yield* LLM.LLM // the service itself, when you need more than the accessors
  yield* Console.log(llm.providerId, llm.providerType, llm.defaultModel) // "anthropic" "anthropic" "claude-sonnet-4-6"
  const caps = llm.capabilities() // the default model's; llm.capabilities("claude-haiku-4-5") for another
  yield* Console.log(caps.contextWindow, caps.maxOutputTokens, caps.thinking, caps.vision)
  const reply = yield* llm.complete(request) // same as LLM.complete(request)
  const usage = yield* LLM.usage // same as llm.usage
  yield* Console.log(reply.content, usage.calls)
  yield* llm.resetUsage
})
// #endregion

// #region streaming
const streamed = Effect.gen(function*() {
  // Print the text as it arrives, then the Finish event's usage and cost
  yield* LLM.stream({ messages: [Message.user("Write a haiku about rivers")] }).pipe(
    Stream.runForEach((event) => {
      switch (event._tag) {
        case "TextDelta":
          return Effect.sync(() => process.stdout.write(event.text))
        case "Finish":
          return Console.log(`\n[${event.finishReason}] ${event.usage.outputTokens} tokens, $${event.costUsd}`)
        default:
          return Effect.void
      }
    })
  )

  // Or fold a stream into the LLMResponse that complete returns for the same reply
  const reply = yield* Response.collect(LLM.stream({ messages: [Message.user("Write a haiku about rivers")] }))

  // Or keep only the text
  const text = yield* LLM.stream({ messages: [Message.user("Write a haiku about rivers")] }).pipe(
    Response.textDeltas,
    Stream.mkString
  )
  return [reply.content, text] as const
})
// #endregion

// #region tools
const City = Schema.Struct({ city: Schema.String })

const getWeather = Tool.make({
  name: "get_weather",
  description: "The current weather in a city",
  parameters: City // sent as JSON Schema
})

// The model's input is `unknown`: decode it with the same Schema before using it
const runTool = (call: Tool.ToolCall) =>
  Schema.decodeUnknown(City)(call.input).pipe(
    Effect.map(({ city }) => Message.toolResult(call.id, { city, temperatureC: 18, sky: "clear" })),
    Effect.catchAll((error) => Effect.succeed(Message.toolResult(call.id, error.message, { isError: true })))
  )

const withTools = Effect.gen(function*() {
  const question = Message.user("What is the weather in Paris?")
  const first = yield* LLM.complete({ messages: [question], tools: [getWeather], toolChoice: "auto" })
  if (first.toolCalls.length === 0) return first.content
  const results = yield* Effect.forEach(first.toolCalls, runTool)
  const second = yield* LLM.complete({
    // the assistant turn goes back as it came (its parts), then the results
    messages: [question, Message.assistant(first.parts), Message.toolResults(results)],
    tools: [getWeather]
  })
  return second.content
})
// #endregion

// #region thinking
const withThinking = Effect.gen(function*() {
  const question = Message.user("Is it warmer in Paris or in Rome right now?")
  const ask = (messages: ReadonlyArray<Message.LLMMessage>) =>
    LLM.complete({ messages, tools: [getWeather], thinking: { budgetTokens: 2048 }, maxTokens: 4096 })
  const first = yield* ask([question])
  yield* Console.log(first.thinking) // the visible reasoning, joined
  // first.parts holds the thinking blocks with their signatures: send them back unchanged
  const results = yield* Effect.forEach(first.toolCalls, runTool)
  const second = yield* ask([question, Message.assistant(first.parts), Message.toolResults(results)])
  return second.content
})

// OpenAI reasoning models take an effort instead of a budget
const reasoned = LLM.complete({
  model: "o4-mini",
  messages: [Message.user("How many r's are in strawberry?")],
  thinking: { effort: "high" }
})
// #endregion

// #region images
const describe = (png: Uint8Array) =>
  LLM.complete({
    messages: [
      Message.user([
        Message.text("What do these two pictures have in common?"),
        Message.imageBase64("image/png", Buffer.from(png).toString("base64")), // base64, no "data:" prefix
        Message.imageUrl("https://example.com/cat.jpg")
      ])
    ]
  })
// #endregion

// #region interruption
// Stopping early: taking 5 pieces ends the stream, which aborts the HTTP request
const firstWords = LLM.stream({ messages: [Message.user("Write a long story")] }).pipe(
  Response.textDeltas,
  Stream.take(5),
  Stream.mkString
)

// A deadline of your own: when it fires, the call's fiber is interrupted and its request aborted
const bounded = LLM.complete({ messages: [Message.user("Summarise War and Peace")] }).pipe(
  Effect.timeout("30 seconds")
)
// #endregion

// #region retry
// One call, retried on retryable errors: exponential backoff with jitter, at least the provider's retry-after
const sturdy = LLM.complete(request).pipe(
  Resilience.retry({ maxRetries: 3, baseDelay: "500 millis", maxDelay: "10 seconds" })
)

// A stream is retried only while it has emitted nothing
const sturdyStream = LLM.stream(request).pipe(Resilience.retry())

// Every call of the LLM in context, retried
const RetryingClaude = Resilience.layerRetry({ maxRetries: 5 }).pipe(Layer.provide(AnthropicLive))
// #endregion

// #region errors
const explain = (error: LLMError.LLMError): string => {
  switch (error._tag) {
    case "RateLimitError": {
      const wait = Option.match(error.retryAfter, { onNone: () => "unknown", onSome: Duration.format })
      return `rate limited, retry after ${wait}; headers: ${JSON.stringify(error.rateLimits ?? {})}`
    }
    case "ContextLengthError":
      return "the conversation no longer fits: trim it"
    default:
      return `${error._tag} (status ${error.status ?? "-"}, request ${error.requestId ?? "-"}, ` +
        `retryable: ${LLMError.isRetryable(error)}): ${error.message}`
  }
}

const answered = LLM.complete(request).pipe(
  Effect.tapError((error) => Effect.logWarning(explain(error))),
  // Recover from one error by its tag; the others stay in the error channel
  Effect.catchTag("ContextLengthError", () => LLM.complete({ ...request, messages: request.messages.slice(-2) }))
)
// #endregion

// #region usage
const report = Effect.gen(function*() {
  const usage = yield* LLM.usage
  yield* Console.log(
    `${usage.calls} calls (${usage.failures} failed), ${usage.inputTokens} input tokens ` +
      `(${usage.cacheReadTokens} cache reads), ${usage.outputTokens} output tokens, $${usage.costUsd.toFixed(6)}`
  )
  for (const [model, m] of Object.entries(usage.byModel)) {
    const unpriced = m.unpricedCalls > 0 ? ` (${m.unpricedCalls} calls not costed: no known price)` : ""
    yield* Console.log(`  ${model}: ${m.calls} calls, $${m.costUsd.toFixed(6)}${unpriced}`)
  }
})
// #endregion

// #region pricing
// 1,000 prompt tokens of which 200 read from the cache, 500 generated:
// (800 x $3 + 200 x $0.30 + 500 x $15) / 1e6 = $0.00996
const usd = Pricing.cost(
  "claude-sonnet-4-5-20250929",
  Usage.tokens({ inputTokens: 1_000, cacheReadTokens: 200, outputTokens: 500 })
)

// Your own prices, USD per million tokens, looked up before the built-in table
const LocalGateway = OpenAI.layer({
  apiKey: Redacted.make("sk-local"),
  baseUrl: "http://localhost:4000/v1",
  defaultModel: "llama-3.1-70b",
  pricing: {
    "llama-3.1-70b": { input: 0.6, output: 0.6 },
    "gpt-4o": { input: 2, output: 8, cacheRead: 1 }
  }
})

// The same table written in snake_case (as in a config file), decoded and checked
const fromConfigFile: Pricing.PriceTable = Schema.decodeUnknownSync(Pricing.PriceTableSchema)({
  "llama-3.1-70b": { input: 0.6, output: 0.6 },
  "gpt-4o": { input: 2, output: 8, cache_read: 1 }
})
// #endregion

// -----------------------------------------------------------------------------
// main: every snippet above, against FakeProviderServer
// -----------------------------------------------------------------------------

const { Reply } = FakeProviderServer

const section = (title: string) => Console.log(`\n== ${title}`)

const main = Effect.gen(function*() {
  const fake = yield* FakeProviderServer.make()
  // The environment the layers read through Config, without touching process.env
  const env = ConfigProvider.fromMap(
    new Map([
      ["ANTHROPIC_API_KEY", "sk-ant-example"],
      ["OPENAI_API_KEY", "sk-example"],
      ["OPENAI_BASE_URL", fake.openaiBaseUrl]
    ])
  )
  const Claude = Anthropic.layerConfig({
    apiKey: Config.redacted("ANTHROPIC_API_KEY"),
    baseUrl: Config.succeed(fake.anthropicBaseUrl)
  })
  const weatherCall = (id: string, city: string) => ({ id, name: "get_weather", arguments: JSON.stringify({ city }) })

  const onClaude = Effect.gen(function*() {
    yield* section("complete")
    yield* fake.enqueue(
      Reply.scripted({ text: "Hello there, nice to meet.", usage: { inputTokens: 14, outputTokens: 7 } })
    )
    yield* hello

    yield* section("the service")
    yield* fake.enqueue(Reply.scripted({ text: "2, 3, 5", usage: { inputTokens: 30, outputTokens: 6 } }))
    yield* inspect
    const sent = (yield* fake.requests).at(-1)!.body as Record<string, unknown>
    assert.equal(sent.system, "Answer in one line.")
    assert.deepEqual(sent.metadata, { user_id: "user-42" })

    yield* section("streaming")
    const haiku = ["Water ", "finds ", "its ", "way, ", "stone ", "by ", "stone."]
    yield* fake.enqueue(
      Reply.scripted({ text: haiku, usage: { inputTokens: 12, outputTokens: 9 } }),
      Reply.scripted({ text: haiku }),
      Reply.scripted({ text: haiku })
    )
    const [collected, text] = yield* streamed
    assert.equal(collected, haiku.join(""))
    assert.equal(text, haiku.join(""))

    yield* section("tools")
    yield* fake.enqueue(
      Reply.scripted({ text: "Let me check.", toolCalls: [weatherCall("toolu_1", "Paris")] }),
      Reply.scripted({ text: "It is 18°C and clear in Paris." })
    )
    yield* Console.log(yield* withTools)
    const toolTurn = ((yield* fake.requests).at(-1)!.body as { messages: Array<unknown> }).messages
    assert.equal(toolTurn.length, 3)

    yield* section("thinking")
    yield* fake.enqueue(
      Reply.scripted({
        thinking: { text: ["I need both ", "temperatures."], signature: "sig-1" },
        toolCalls: [weatherCall("toolu_2", "Paris"), weatherCall("toolu_3", "Rome")]
      }),
      Reply.scripted({ text: "Both are 18°C." })
    )
    yield* Console.log(yield* withThinking)
    const back = (yield* fake.requests).at(-1)!.body as { messages: Array<{ content: Array<unknown> }> }
    assert.deepEqual(back.messages[1]!.content[0], {
      type: "thinking",
      thinking: "I need both temperatures.",
      signature: "sig-1"
    })

    yield* section("images")
    yield* fake.enqueue(Reply.scripted({ text: "Both show a cat." }))
    yield* Console.log((yield* describe(new Uint8Array([137, 80, 78, 71]))).content)

    yield* section("interruption")
    yield* fake.enqueue(
      Reply.scripted({ text: Array.from({ length: 100 }, (_, i) => `word${i} `) }, { delayBetweenEventsMillis: 20 }),
      Reply.hang
    )
    yield* Console.log(yield* firstWords)
    yield* fake.awaitAborted(1) // the server saw the client go away
    const deadline = yield* LLM.complete({ messages: [Message.user("Summarise War and Peace")] }).pipe(
      Effect.timeout("1 second"),
      Effect.flip
    )
    yield* Console.log(deadline._tag)
    yield* fake.awaitAborted(2)

    yield* section("retry")
    yield* fake.enqueue(
      Reply.anthropicError(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {
        "retry-after-ms": "300",
        "anthropic-ratelimit-requests-remaining": "0"
      }),
      Reply.scripted({ text: "2, 3, 5" }),
      Reply.anthropicError(529, "overloaded_error", "Overloaded"),
      Reply.scripted({ text: "7, 11, 13" })
    )
    const retried = yield* sturdy.pipe(Effect.tapErrorCause(Effect.logError))
    const retriedStream = yield* Response.collect(sturdyStream)
    yield* Console.log(retried.content, "/", retriedStream.content)

    yield* section("errors")
    yield* fake.enqueue(
      Reply.anthropicError(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
      Reply.scripted({ text: "Trimmed and answered." }),
      Reply.anthropicError(429, "rate_limit_error", "Slow down", {
        "retry-after": "3",
        "anthropic-ratelimit-tokens-remaining": "0"
      })
    )
    yield* Console.log((yield* answered).content)
    const limited = yield* Effect.flip(LLM.complete(request))
    yield* Console.log(explain(limited))

    yield* section("usage")
    yield* report
    return yield* LLM.usage
  }).pipe(Effect.provide(Claude))

  const onOpenAI = Effect.gen(function*() {
    yield* section("OpenAI: reasoning effort, a model with no known price")
    yield* fake.enqueue(
      Reply.scripted({ text: "3", usage: { inputTokens: 20, outputTokens: 120, reasoningTokens: 100 } }),
      Reply.scripted({ text: "Hi from a local model" })
    )
    const reply = yield* reasoned
    assert.equal(((yield* fake.requests).at(-1)!.body as Record<string, unknown>).reasoning_effort, "high")
    yield* Console.log(reply.content, reply.usage)
    const local = yield* LLM.complete({ model: "llama-3.1-70b", messages: [Message.user("Hi")] })
    assert.equal(local.costUsd, undefined) // no price known: not costed, and warned about once
    yield* report
  }).pipe(Effect.provide(OpenAILive))

  yield* Effect.withConfigProvider(Effect.all([onClaude, onOpenAI]), env)

  yield* section("pricing")
  assert.ok(Math.abs(usd! - 0.00996) < 1e-12)
  assert.deepEqual(fromConfigFile["gpt-4o"], { input: 2, output: 8, cacheRead: 1 })
  yield* Console.log(`$${usd}`)
  // Only built, never run here: they would need a real key or a local gateway
  void [ClaudeHaiku, LocalGateway, RetryingClaude, bounded]
}).pipe(Effect.scoped)

Effect.runPromise(main).then(
  () => console.log("\ngetting-started: done"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
