/**
 * Shared usage totals (issue 14): `SharedState.usage` on `layerMemory` and on a real
 * redis-server of the test's own: two workers sum exactly; Redis killed mid-run and restarted:
 * exact after the flush (no loss, no double count); a full outbox drops the oldest, with the metric.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as SharedState from "../src/SharedState.js"
import * as Usage from "../src/Usage.js"
import * as RedisHarness from "./redis.js"

let namespaces = 0
const freshNamespace = () => `u${process.pid}-${Date.now()}-${++namespaces}`

const connect = (url: string, namespace: string, usage?: SharedState.UsageOutboxOptions) =>
  Effect.map(
    Layer.build(SharedState.layerRedis({
      url: Redacted.make(url),
      namespace,
      timeout: Duration.millis(200),
      usage: { interval: Duration.millis(20), ...usage }
    })),
    (context) => Context.get(context, SharedState.SharedState)
  )

const call = (i: number): Usage.CallRecord => ({
  model: i % 2 === 0 ? "gpt-4o" : "gpt-4o-mini",
  tokens: Usage.tokens({ inputTokens: 10 + i, outputTokens: 5, cacheReadTokens: 1, reasoningTokens: i % 3 }),
  costUsd: i % 5 === 0 ? undefined : 0.000_001_3 * (i + 1),
  failed: false
})

/** What `n` calls from `from` add up to, computed with the local tally. */
const expected = (provider: string, from: number, n: number) => {
  let u = Usage.empty
  for (let i = from; i < from + n; i++) u = Usage.add(u, call(i))
  return { provider, u }
}

const realSleep = (millis: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, millis)))

const near = (actual: Usage.TokenUsage, wanted: Usage.TokenUsage) => {
  expect({ ...actual, costUsd: 0, byModel: {} }).toEqual({ ...wanted, costUsd: 0, byModel: {} })
  expect(actual.costUsd).toBeCloseTo(wanted.costUsd, 9)
  expect(Object.keys(actual.byModel).sort()).toEqual(Object.keys(wanted.byModel).sort())
}

describe("SharedState.usage: layerMemory", () => {
  it.effect("adds land at once and read back per provider", () =>
    Effect.gen(function*() {
      const state = yield* SharedState.make
      for (let i = 0; i < 20; i++) yield* state.usage.add(SharedState.usageEntry(i < 10 ? "a" : "b", call(i)))
      near(yield* state.usage.totals, expected("", 0, 20).u)
      const by = yield* state.usage.byProvider
      near(by["a"]!, expected("a", 0, 10).u)
      near(by["b"]!, expected("b", 10, 10).u)
      expect(yield* state.usage.pending).toBe(0)
    }))
})

describe("SharedState.usage: layerRedis (a real redis-server)", () => {
  it.live("two workers on one Redis sum exactly", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      const ns = freshNamespace()
      const one = yield* connect(redis.url, ns)
      const two = yield* connect(redis.url, ns)
      yield* Effect.forEach([one, two], (s, w) =>
        Effect.forEach(
          Array.from({ length: 300 }, (_, i) => i),
          (i) => s.usage.add(SharedState.usageEntry(`p${w}`, call(i))),
          { discard: true }
        ), { concurrency: 2 })
      yield* one.usage.flush
      yield* two.usage.flush
      const by = yield* one.usage.byProvider
      near(by["p0"]!, expected("p0", 0, 300).u)
      near(by["p1"]!, expected("p1", 0, 300).u)
      expect((yield* one.usage.totals).calls).toBe(600)
      // Integer nano-dollars: the shared total is exact, not a float sum.
      const nano = Math.round((yield* one.usage.totals).costUsd * 1e9)
      expect(nano).toBe(
        2 * Array.from({ length: 300 }, (_, i) => i).reduce((a, i) =>
          a + (i % 5 === 0 ? 0 : Math.round(0.000_001_3 * (i + 1) * 1e9)), 0)
      )
    })), 20_000)

  it.live(
    "Redis killed mid-run, then restarted: exact after the flush (no loss, no double count)",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const redis = yield* RedisHarness.make({ aof: "always" })
        const ns = freshNamespace()
        const store = yield* connect(redis.url, ns, { batchSize: 7 })
        for (let i = 0; i < 50; i++) yield* store.usage.add(SharedState.usageEntry("p", call(i)))
        yield* store.usage.flush
        yield* redis.kill
        for (let i = 50; i < 120; i++) yield* store.usage.add(SharedState.usageEntry("p", call(i)))
        yield* realSleep(100) // the flusher tries (and fails) several times meanwhile
        const failed = yield* Effect.either(store.usage.flush)
        expect(failed._tag).toBe("Left")
        expect(yield* store.usage.pending).toBe(70)
        yield* redis.start
        // The client reconnects in the background; the interval flusher sends what was kept.
        const deadline = Date.now() + 5_000
        while ((yield* store.usage.pending) > 0 && Date.now() < deadline) yield* realSleep(20)
        yield* store.usage.flush
        near(yield* store.usage.totals, expected("p", 0, 120).u)
      })),
    20_000
  )

  it.live("a full outbox drops the oldest, with a warning and the metric", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      const ns = freshNamespace()
      const store = yield* connect(redis.url, ns, { capacity: 30, batchSize: 10, interval: Duration.seconds(60) })
      const before = (yield* Metric.value(SharedState.usageDroppedCalls)).count
      yield* redis.kill
      for (let i = 0; i < 100; i++) yield* store.usage.add(SharedState.usageEntry("p", call(i)))
      expect((yield* Metric.value(SharedState.usageDroppedCalls)).count - before).toBe(70)
      expect(yield* store.usage.pending).toBe(30)
      yield* redis.start
      const deadline = Date.now() + 5_000
      while (Date.now() < deadline) {
        const r = yield* Effect.either(store.usage.flush)
        if (r._tag === "Right") break
        yield* realSleep(20)
      }
      // The newest 30 survive.
      near(yield* store.usage.totals, expected("p", 70, 30).u)
    })), 20_000)

  it.live(
    "a retried batch after a lost reply adds nothing twice (same batch id)",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const redis = yield* RedisHarness.make()
        const ns = freshNamespace()
        const store = yield* connect(redis.url, ns, { interval: Duration.seconds(60) })
        // The script is loaded first (else the paused server would answer the first send NOSCRIPT).
        yield* store.usage.add(SharedState.usageEntry("p", call(10)))
        yield* store.usage.flush
        for (let i = 0; i < 10; i++) yield* store.usage.add(SharedState.usageEntry("p", call(i)))
        // SIGSTOP: the command reaches the server's socket, the reply never comes within the timeout;
        // after SIGCONT the server applies it. The retry carries the same batch id.
        yield* redis.pause
        expect((yield* Effect.either(store.usage.flush))._tag).toBe("Left")
        yield* redis.resume
        yield* realSleep(50)
        // The server applied the first send although its reply was lost.
        expect((yield* store.usage.totals).calls).toBe(11)
        const deadline = Date.now() + 5_000
        while (Date.now() < deadline) {
          const r = yield* Effect.either(store.usage.flush)
          if (r._tag === "Right") break
          yield* realSleep(20)
        }
        near(yield* store.usage.totals, expected("p", 0, 11).u)
      })),
    20_000
  )
})
