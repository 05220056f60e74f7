/**
 * Budgets shared by two workers: two `Budget.makeShared` on two separate `SharedState.layerRedis`
 * connections (a real redis-server of the test's own), guarding real OpenAI SDK calls to the
 * `FakeProviderServer`. The server's own request log is the truth.
 */
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Budget from "../src/Budget.js"
import type * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import type * as Pricing from "../src/Pricing.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as Response from "../src/Response.js"
import * as SharedState from "../src/SharedState.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as RedisHarness from "./redis.js"

const { Reply } = FakeProviderServer

class Redis extends Context.Tag("test/SharedBudgetRedis")<Redis, RedisHarness.RedisServer>() {}

/** $10 per million output tokens, input free: 1000 output tokens forecast $0.01, 800 cost $0.008. */
const flatPricing: Pricing.PriceTable = { "gpt-4o-mini": { input: 0, output: 10 } }
const ask = (text: string): LLM.CompletionRequest => ({ messages: [Message.user(text)], maxTokens: 1000 })

const worker = (server: FakeProviderServer.Service, url: string, namespace: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      SharedState.layerRedis({ url: Redacted.make(url), namespace, timeout: Duration.millis(500) })
    )
    const budget = yield* Effect.provide(Budget.makeShared({ total: { usd: 1 } }), context)
    const provider = yield* OpenAI.make({
      apiKey: Redacted.make("sk-test"),
      baseUrl: server.openaiBaseUrl,
      defaultModel: "gpt-4o-mini",
      pricing: flatPricing
    })
    return { budget, llm: Budget.guard(provider, budget) }
  })

layer(Layer.merge(FakeProviderServer.layer(), Layer.scoped(Redis, RedisHarness.make())), {
  excludeTestServices: true
})("Budget shared by two workers on Redis (real SDKs, FakeProviderServer)", (it) => {
  it.scoped(
    "300 concurrent calls from two workers against one $1 limit: spend <= $1, exact, no reservation left",
    () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.FakeProviderServer
        const redis = yield* Redis
        yield* server.reset
        yield* server.setHandler(() =>
          Reply.scripted({ text: ["a", "b", "c"], usage: { inputTokens: 12, outputTokens: 800 } }, {
            delayBetweenEventsMillis: 5
          })
        )
        const namespace = `shared-${process.pid}-${Date.now()}`
        const workers = [yield* worker(server, redis.url, namespace), yield* worker(server, redis.url, namespace)]
        // Two waves: the second starts once the first settled, so settled spend (not only
        // reservations) is what refuses it.
        const wave = (n: number) =>
          Effect.all(
            Array.from(
              { length: n },
              (_, i) => Effect.either(Response.collect(workers[i % 2]!.llm.stream(ask(`call ${i}`))))
            ),
            { concurrency: "unbounded" }
          )
        const first = yield* wave(150)
        const second = yield* wave(150)
        const outcomes = [...first, ...second]
        const served = outcomes.filter(Either.isRight).length
        const refused = outcomes.filter((o) => Either.isLeft(o) && o.left._tag === "BudgetExceededError").length
        expect(served + refused).toBe(300)
        const requests = yield* server.requests
        expect(requests).toHaveLength(served)
        // $0.01 reserved each: 100 admitted in the first wave; they settle at $0.008 = $0.80, so the
        // second wave admits 20 more ($0.20 / $0.01).
        expect(served).toBe(120)
        for (const { budget } of workers) {
          const state = yield* budget.state(Budget.Target.total)
          expect(Math.round(state.spent.usd * 1e9)).toBe(served * 8_000_000)
          expect(state.spent.usd).toBeLessThanOrEqual(1)
          expect(state.spent.tokens).toBe(served * 812)
          expect(state.reserved).toEqual({ usd: 0, tokens: 0 })
        }
      }),
    { timeout: 30_000 }
  )
})
