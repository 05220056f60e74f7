/**
 * `npm start`: the library end to end.
 *
 * The providers come from `examples/providers.yaml`, built by a `ProviderRegistry`. With no API
 * keys the demo starts FakeProviderServer on 127.0.0.1 and points the config at it (its
 * `${FAKE_ANTHROPIC_URL}`-style variables supplied by a `ConfigProvider`), talking to it through
 * the real Anthropic and OpenAI providers (the official SDKs, real HTTP, real SSE). With
 * `ANTHROPIC_API_KEY` and/or `OPENAI_API_KEY` set it talks to the real APIs instead, and says so.
 *
 * For each provider (through its agent in the config): a streamed answer printed as it arrives, a
 * tool call answered and sent back, a 429 survived by waiting its `retry-after` (fake server
 * only), then the registry's usage and cost table.
 */
import { NodeFileSystem } from "@effect/platform-node"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { fileURLToPath } from "node:url"
import { LLM, LLMError, Message, ProviderRegistry, ProvidersConfig, Resilience, Tool } from "../src/index.js"
import { FakeProviderServer } from "../src/testing/index.js"

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
    // No maxTokens: the agent's max_tokens (300) applies, and its system prompt.
    const first = yield* LLM.complete({ messages: [question], tools: [weather] })
    for (const call of first.toolCalls) {
      yield* Console.log(`  tool>   the model calls ${call.name}(${JSON.stringify(call.input)})`)
    }
    const results = first.toolCalls.map((call) => Message.toolResult(call.id, runWeather(call.input)))
    const answer = results.length === 0 ? first : yield* LLM.complete({
      messages: [question, Message.assistant(first.parts), Message.toolResults(results)],
      tools: [weather]
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
  })

const configPath = fileURLToPath(new URL("./providers.yaml", import.meta.url))

/** Which agent of the config tours which provider. */
const assistants: ReadonlyArray<{ readonly provider: string; readonly agent: string; readonly key: string }> = [
  { provider: "claude_main", agent: "claude_assistant", key: "ANTHROPIC_API_KEY" },
  { provider: "openai_main", agent: "openai_assistant", key: "OPENAI_API_KEY" }
]

/** The config with only the given providers (and the agents on them). */
const only = (
  config: ProvidersConfig.ProvidersConfig,
  ids: ReadonlyArray<string>
): ProvidersConfig.ProvidersConfig => ({
  ...config,
  providers: Object.fromEntries(Object.entries(config.providers).filter(([id]) => ids.includes(id))),
  agents: Object.fromEntries(Object.entries(config.agents).filter(([, agent]) => ids.includes(agent.provider)))
})

const program = Effect.gen(function*() {
  // Which keys are set, read through the ConfigProvider (the environment).
  const liveIds: Array<string> = []
  for (const { key, provider } of assistants) {
    if (Option.isSome(yield* Config.option(Config.redacted(key)))) liveIds.push(provider)
  }
  const live = liveIds.length > 0
  const fake = live ? undefined : yield* FakeProviderServer.make()
  yield* Console.log(
    live
      ? "API keys found: talking to the real APIs (" +
        liveIds.map((id) => id === "claude_main" ? "Anthropic" : "OpenAI").join(", ") + ")."
      : `No API keys set: talking to FakeProviderServer on ${fake!.url} through the real SDKs.\n` +
        "Set ANTHROPIC_API_KEY and/or OPENAI_API_KEY to use the real APIs."
  )
  // On the fake server the config's variables come from this map; live, from the environment
  // (a provider whose key is not set gets a placeholder and is left out).
  const env = fake
    ? ConfigProvider.fromMap(
      new Map([
        ["ANTHROPIC_API_KEY", "sk-ant-demo"],
        ["OPENAI_API_KEY", "sk-demo"],
        ["FAKE_ANTHROPIC_URL", fake.anthropicBaseUrl],
        ["FAKE_OPENAI_URL", fake.openaiBaseUrl]
      ])
    )
    : ConfigProvider.fromEnv().pipe(
      ConfigProvider.orElse(() =>
        ConfigProvider.fromMap(new Map(assistants.map(({ key }) => [key, "not-set"] as const)))
      )
    )
  const loaded = yield* ProvidersConfig.load(configPath).pipe(Effect.withConfigProvider(env))
  const config = fake ? loaded : only(loaded, liveIds)
  const registry = ProviderRegistry.layerFromConfig(config)

  yield* Effect.gen(function*() {
    for (const { agent } of assistants.filter((a) => Object.hasOwn(config.providers, a.provider))) {
      yield* tour(fake).pipe(Effect.provide(ProviderRegistry.agent(agent)))
    }
    yield* section("Usage and cost per provider")
    const summary = yield* ProviderRegistry.usageSummary
    yield* Console.log(summary.table.split("\n").map((line) => `  ${line}`).join("\n"))
  }).pipe(Effect.provide(registry), Effect.withConfigProvider(env))
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
