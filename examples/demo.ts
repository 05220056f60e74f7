/**
 * `npm start`: the library end to end.
 *
 * With no API keys it starts FakeProviderServer on 127.0.0.1 and talks to it through the real
 * Anthropic and OpenAI layers (the official SDKs, real HTTP, real SSE). With `ANTHROPIC_API_KEY`
 * and/or `OPENAI_API_KEY` set it talks to the real APIs instead, and says so.
 *
 * For each provider: a streamed answer printed as it arrives, a tool call answered and sent back,
 * a 429 survived by waiting its `retry-after` (fake server only), then a usage and cost table.
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Anthropic, LLM, LLMError, Message, OpenAI, Resilience, Tool, Usage } from "../src/index.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"

const { Reply } = FakeProviderServer

const weather = Tool.make({
  name: "get_weather",
  description: "The current weather in a city",
  parameters: Schema.Struct({ city: Schema.String })
})

// The tool itself: a local function the model asks us to run.
const runWeather = (input: unknown) => {
  const { city } = Schema.decodeUnknownSync(Schema.Struct({ city: Schema.String }))(input)
  return { city, temperatureC: city === "Paris" ? 18 : 24, sky: "clear" }
}

const write = (text: string) => Effect.sync(() => process.stdout.write(text))

const section = (title: string) => Console.log(`\n\x1b[1m${title}\x1b[0m`)

/** What the demo does with one provider. */
const tour = (fake: FakeProviderServer.Service | undefined) =>
  Effect.gen(function*() {
    const llm = yield* LLM.LLM
    const protocol = llm.providerType === "anthropic" ? "anthropic" : "openai"
    yield* section(`${llm.providerId} (${llm.defaultModel})`)

    // 1. A streamed answer, printed as it arrives.
    if (fake) {
      yield* fake.enqueue(Reply.scripted({
        text: [
          "Effect ",
          "makes ",
          "failures ",
          "values: ",
          "typed, ",
          "composable ",
          "and ",
          "easy ",
          "to ",
          "retry."
        ],
        usage: { inputTokens: 24, outputTokens: 10 }
      }, { delayBetweenEventsMillis: 40 }))
    }
    yield* write("  stream> ")
    yield* LLM.stream({ messages: [Message.user("In one sentence: why use Effect for LLM calls?")], maxTokens: 100 })
      .pipe(
        Stream.runForEach((event) => event._tag === "TextDelta" ? write(event.text) : Effect.void)
      )
    yield* write("\n")

    // 2. A tool call: the model asks, we run the tool, send the result back, it answers.
    if (fake) {
      yield* fake.enqueue(
        Reply.scripted({
          text: "Let me check.",
          toolCalls: [{
            id: protocol === "anthropic" ? "toolu_01" : "call_01",
            name: "get_weather",
            arguments: "{\"city\":\"Paris\"}"
          }],
          usage: { inputTokens: 310, outputTokens: 42, cacheReadTokens: 200 }
        }),
        Reply.scripted({
          text: "It is 18°C and clear in Paris.",
          usage: { inputTokens: 380, outputTokens: 14, cacheReadTokens: 200 }
        })
      )
    }
    const question = Message.user("What is the weather in Paris right now?")
    const first = yield* LLM.complete({ messages: [question], tools: [weather], maxTokens: 300 })
    for (const call of first.toolCalls) {
      yield* Console.log(`  tool>   the model calls ${call.name}(${JSON.stringify(call.input)})`)
    }
    const results = first.toolCalls.map((call) => Message.toolResult(call.id, runWeather(call.input)))
    const answer = results.length === 0 ? first : yield* LLM.complete({
      messages: [question, Message.assistant(first.parts), Message.toolResults(results)],
      tools: [weather],
      maxTokens: 300
    })
    yield* Console.log(`  answer> ${answer.content.trim()}`)

    // 3. A 429 with retry-after: 1, survived by the retry policy (fake server only).
    if (fake) {
      yield* fake.enqueue(
        protocol === "anthropic"
          ? Reply.anthropicError(429, "rate_limit_error", "Number of requests has exceeded your rate limit", {
            "retry-after": "1"
          })
          : Reply.openaiError(429, {
            message: "Rate limit reached for requests",
            type: "requests",
            code: "rate_limit_exceeded"
          }, {
            "retry-after": "1"
          }),
        Reply.scripted({ text: "Answered after waiting as asked.", usage: { inputTokens: 12, outputTokens: 7 } })
      )
      const started = Date.now()
      const reply = yield* LLM.complete({ messages: [Message.user("Hello again")], maxTokens: 50 }).pipe(
        Effect.tapError((error) =>
          Console.log(
            `  retry>  ${error._tag}, provider asked to wait ${
              Option.match(LLMError.retryAfter(error), { onNone: () => "nothing", onSome: Duration.format })
            }`
          )
        ),
        Resilience.retry()
      )
      yield* Console.log(`  retry>  "${reply.content}" after ${((Date.now() - started) / 1000).toFixed(1)} s`)
    }
    return [`${llm.providerId} (${llm.defaultModel})`, yield* llm.usage] as const
  })

const usd = (n: number) => `$${n.toFixed(6)}`

const table = (rows: ReadonlyArray<readonly [string, Usage.TokenUsage]>) => {
  const header = ["provider", "calls", "failures", "input", "cache read", "output", "cost"]
  const lines = rows.map(([id, u]) => [
    id,
    String(u.calls),
    String(u.failures),
    String(u.inputTokens),
    String(u.cacheReadTokens),
    String(u.outputTokens),
    usd(u.costUsd)
  ])
  const total = rows.reduce((acc, [, u]) => Usage.combine(acc, u), Usage.empty)
  lines.push([
    "total",
    String(total.calls),
    String(total.failures),
    String(total.inputTokens),
    String(total.cacheReadTokens),
    String(total.outputTokens),
    usd(total.costUsd)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const render = (cells: ReadonlyArray<string>) =>
    "  " + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ")
  return [render(header), "  " + widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(render)].join("\n")
}

const program = Effect.gen(function*() {
  const anthropicKey = process.env.ANTHROPIC_API_KEY
  const openaiKey = process.env.OPENAI_API_KEY
  const live = anthropicKey !== undefined || openaiKey !== undefined
  const fake = live ? undefined : yield* FakeProviderServer.make()
  yield* Console.log(
    live
      ? "API keys found: talking to the real APIs (" +
        [anthropicKey && "Anthropic", openaiKey && "OpenAI"].filter(Boolean).join(", ") + ")."
      : `No API keys set: talking to FakeProviderServer on ${fake!.url} through the real SDKs.\n` +
        "Set ANTHROPIC_API_KEY and/or OPENAI_API_KEY to use the real APIs."
  )
  const layers: Array<Layer.Layer<LLM.LLM>> = []
  if (fake || anthropicKey) {
    layers.push(Anthropic.layer({
      apiKey: Redacted.make(anthropicKey ?? "sk-ant-demo"),
      defaultModel: "claude-sonnet-4-6",
      ...(fake ? { baseUrl: fake.anthropicBaseUrl } : {})
    }))
  }
  if (fake || openaiKey) {
    layers.push(OpenAI.layer({
      apiKey: Redacted.make(openaiKey ?? "sk-demo"),
      defaultModel: "gpt-4o-mini",
      ...(fake ? { baseUrl: fake.openaiBaseUrl } : {})
    }))
  }
  const rows: Array<readonly [string, Usage.TokenUsage]> = []
  for (const layer of layers) {
    rows.push(yield* tour(fake).pipe(Effect.provide(layer)))
  }
  yield* section("Usage and cost per provider")
  yield* Console.log(table(rows))
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
