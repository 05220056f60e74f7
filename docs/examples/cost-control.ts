/**
 * The code of docs/cost-control.md. The `#region` blocks are what the page shows.
 *
 * Run it with `npx tsx docs/examples/cost-control.ts`: no API key, no network beyond 127.0.0.1
 * (the calls go through the real OpenAI and Anthropic SDKs to the bundled FakeProviderServer).
 */
// #region imports
import { Effect, Either, Fiber, Queue, Redacted, Stream } from "effect"
import * as assert from "node:assert/strict"
import type { LLM } from "../../src/index.js"
import { Anthropic, Budget, Message, OpenAI, Pricing, Response, Usage } from "../../src/index.js"
import { FakeProviderServer } from "../../src/testing/index.js"

const { Reply } = FakeProviderServer
// #endregion

// #region forecast
// What a call can cost at most, before it is sent: its prompt, its output cap, their price.
const forecasting = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const llm = yield* OpenAI.make({
    apiKey: Redacted.make("sk-test"),
    baseUrl: server.openaiBaseUrl,
    defaultModel: "gpt-4o-mini",
    pricing: { "gpt-4o-mini": { input: 0.15, output: 0.6 } }
  })
  const request: LLM.CompletionRequest = { messages: [Message.user("Summarise the report")], maxTokens: 1000 }
  const counted = yield* llm.countTokens(request) // { inputTokens, method: "tokenizer" | "estimate" | "provider" }
  const forecast = yield* llm.forecast(request) // { inputTokens, maxOutputTokens: 1000, maxUsd, method }
  return { counted, forecast, requests: (yield* server.requests).length } // nothing was sent
}).pipe(Effect.scoped)
// #endregion

// #region reserve
// 200 concurrent calls against $1: each forecasts $0.01 (1000 output tokens at $10 per million)
// and costs $0.008. Exactly 100 fit at once; the others are refused before any request.
const concurrent = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  yield* server.setHandler(() =>
    Reply.scripted({ text: "done", usage: { inputTokens: 12, outputTokens: 800 } }, { delayBetweenEventsMillis: 5 })
  )
  const provider = yield* OpenAI.make({
    apiKey: Redacted.make("sk-test"),
    baseUrl: server.openaiBaseUrl,
    defaultModel: "gpt-4o-mini",
    pricing: { "gpt-4o-mini": { input: 0, output: 10 } }
  })
  const budget = yield* Budget.make({ total: { usd: 1 }, committedThresholds: [1] })
  const alerts = yield* budget.subscribe
  const llm = Budget.guard(provider, budget)

  const ask = (i: number) => Response.collect(llm.stream({ messages: [Message.user(`task ${i}`)], maxTokens: 1000 }))
  const results = yield* Effect.all(Array.from({ length: 200 }, (_, i) => Effect.either(ask(i))), {
    concurrency: "unbounded"
  })
  const state = yield* budget.state(Budget.Target.total)
  return {
    admitted: results.filter(Either.isRight).length, // 100
    refused: results.filter(Either.isLeft).length, // 100 BudgetExceededError
    requests: (yield* server.requests).length, // 100: refused calls reached no server
    spent: state.spent.usd, // 100 × $0.008 = $0.80
    reserved: state.reserved.usd, // 0: every call settled
    alerts: [...(yield* Queue.takeAll(alerts))].map((alert) => alert.message)
  }
}).pipe(Effect.scoped)
// #endregion

// #region settle
// A call settles to what the provider reported before it broke: a stream cut after
// `message_start` costs the prompt Anthropic billed, not its reservation and not nothing.
const settling = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  yield* server.enqueue(
    Reply.scripted({ text: ["never ", "seen"], usage: { inputTokens: 1000 } }, { dropAfterEvents: 1 })
  )
  yield* server.enqueue(Reply.hang)
  const provider = yield* Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-sonnet-4-6"
  })
  const budget = yield* Budget.make({ total: { usd: 1 } })
  const llm = Budget.guard(provider, budget)

  const cut = yield* Effect.either(Stream.runDrain(llm.stream({ messages: [Message.user("Hi")], maxTokens: 500 })))
  const afterCut = yield* budget.spent(Budget.Target.total)

  // A call interrupted before the provider reported anything settles to its reservation.
  const request: LLM.CompletionRequest = { messages: [Message.user("Hi")], maxTokens: 500 }
  const forecast = yield* provider.forecast(request)
  const call = yield* Effect.fork(llm.complete(request))
  while ((yield* server.requests).length < 2) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
  yield* Fiber.interrupt(call)
  const afterInterrupt = yield* budget.spent(Budget.Target.total)
  return { cut, afterCut, forecast, afterInterrupt, usage: yield* provider.usage }
}).pipe(Effect.scoped)
// #endregion

// #region unpriced
// A model with no known price has no USD forecast: a USD budget refuses it before any request,
// unless told `unpriced: "allow"` (then its tokens count, and no dollars).
const unpriced = Effect.gen(function*() {
  const server = yield* FakeProviderServer.make()
  const provider = yield* OpenAI.make({
    apiKey: Redacted.make("sk-test"),
    baseUrl: server.openaiBaseUrl,
    defaultModel: "my-local-model"
  })
  const ask: LLM.CompletionRequest = { messages: [Message.user("Hi")], maxTokens: 100 }
  const strict = Budget.guard(provider, yield* Budget.make({ total: { usd: 5 } }))
  const refused = yield* Effect.flip(strict.complete(ask))
  const lenientBudget = yield* Budget.make({ total: { usd: 5 }, unpriced: "allow" })
  yield* Budget.guard(provider, lenientBudget).complete(ask)
  return { refused, lenient: yield* lenientBudget.spent(Budget.Target.total) }
}).pipe(Effect.scoped)
// #endregion

// -----------------------------------------------------------------------------
// main: run every example and check what it shows
// -----------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const f = yield* forecasting
  assert.equal(f.forecast.maxOutputTokens, 1000)
  assert.ok(f.forecast.maxUsd !== undefined && f.forecast.maxUsd > 0.0006)
  assert.equal(f.counted.inputTokens, f.forecast.inputTokens)
  assert.equal(f.requests, 0)
  console.log(
    `ok  forecast: ${f.forecast.inputTokens} input tokens (${f.forecast.method}), at most $${f.forecast.maxUsd}`
  )

  const c = yield* concurrent
  assert.equal(c.admitted, 100)
  assert.equal(c.refused, 100)
  assert.equal(c.requests, 100)
  assert.equal(Math.round(c.spent * 1e9), Math.round(0.8 * 1e9))
  assert.equal(c.reserved, 0)
  assert.ok(c.alerts.some((message) => message.includes("has committed 100%")))
  console.log(`ok  reserve: ${c.admitted} admitted, ${c.refused} refused, $${c.spent.toFixed(3)} spent`)

  const s = yield* settling
  assert.ok(Either.isLeft(s.cut))
  const billed = Pricing.cost("claude-sonnet-4-6", Usage.tokens({ inputTokens: 1000, outputTokens: 1 }))!
  assert.equal(Math.round(s.afterCut.usd * 1e9), Math.round(billed * 1e9))
  assert.equal(Math.round(s.afterInterrupt.usd * 1e9), Math.round((billed + s.forecast.maxUsd!) * 1e9))
  assert.equal(s.usage.calls, 2)
  console.log(`ok  settle: cut stream $${s.afterCut.usd.toFixed(6)}, then interrupted call $${s.afterInterrupt.usd}`)

  const u = yield* unpriced
  assert.equal(u.refused._tag, "BudgetExceededError")
  assert.match(u.refused.message, /no known price/)
  assert.equal(u.lenient.usd, 0)
  assert.ok(u.lenient.tokens > 0)
  console.log("ok  unpriced")
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
