/**
 * The code of docs/tokens.md. The `#region` blocks are what the page shows. Run it with
 * `npx tsx docs/examples/tokens.ts`: no API key, no network beyond 127.0.0.1 (the providers talk
 * to the bundled `FakeProviderServer` through their real SDKs).
 */
// #region imports
import { Effect, Redacted } from "effect"
import * as assert from "node:assert/strict"
import { Anthropic, LLM, Message, OpenAI, Tokens } from "../../src/index.js"
import { FakeProviderServer } from "../../src/testing/index.js"
// #endregion

const question = { messages: [Message.user("Invent a new holiday and describe its traditions.")], maxTokens: 512 }

// #region count
/** Counting sends nothing by default: the tokenizer for OpenAI models. */
export const countOpenAi = Effect.gen(function*() {
  const counted = yield* Tokens.count({ ...question, model: "gpt-4.1-nano" })
  // What the API reported for this prompt: 16 prompt tokens.
  assert.deepEqual(counted, { inputTokens: 16, method: "tokenizer" })
  // The most the call can cost: 16 tokens in, 512 out, at gpt-4.1-mini's prices.
  const forecast = yield* Tokens.forecast({ ...question, model: "gpt-4.1-mini" })
  assert.deepEqual(forecast, {
    model: "gpt-4.1-mini",
    inputTokens: 16,
    maxOutputTokens: 512,
    maxUsd: (16 * 0.4 + 512 * 1.6) / 1e6,
    method: "tokenizer"
  })
  return forecast
})
// #endregion

// #region provider
/** Claude: an estimate that errs high locally, the exact count from `count_tokens` when asked. */
export const countClaude = Effect.gen(function*() {
  const local = yield* Tokens.count(question)
  const exact = yield* Tokens.count(question, { method: "provider" })
  assert.equal(local.method, "estimate")
  assert.equal(exact.method, "provider")
  assert.ok(local.inputTokens >= exact.inputTokens)
  return { local, exact }
})
// #endregion

// #region guard
/** Over the context window: refused before any request, or clamped with `clampMaxTokens`. */
export const guard = (server: FakeProviderServer.Service) =>
  Effect.gen(function*() {
    yield* server.reset
    const long = { model: "gpt-4o", messages: [Message.user("word" + " word".repeat(120_000))], maxTokens: 16_000 }
    const error = yield* Effect.flip(LLM.complete(long))
    assert.equal(error._tag, "ContextLengthError")
    assert.equal((yield* server.requests).length, 0)

    const clamping = yield* OpenAI.make({
      apiKey: Redacted.make("sk-test"),
      baseUrl: server.openaiBaseUrl,
      clampMaxTokens: true
    })
    yield* clamping.complete(long)
    const [sent] = yield* server.requests
    const clamped = (sent?.body as { max_completion_tokens: number }).max_completion_tokens
    assert.equal(clamped, 128_000 - (yield* Tokens.count(long)).inputTokens) // 7,992
    return clamped
  })
// #endregion

const main = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const openai = OpenAI.layer({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl })
  const claude = Anthropic.layer({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-haiku-4-5"
  })
  const forecast = yield* Effect.provide(countOpenAi, openai)
  console.log("gpt-4.1-mini forecast:", forecast)
  console.log("claude counts:", yield* Effect.provide(countClaude, claude))
  console.log("clamped max tokens:", yield* Effect.provide(guard(server), openai))
}).pipe(Effect.scoped)

Effect.runPromise(main).then(
  () => console.log("docs/examples/tokens.ts: all ran"),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
