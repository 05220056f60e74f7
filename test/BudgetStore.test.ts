/**
 * Budgets on `SharedState`: the store contract (test/BudgetStore.contract.ts) against
 * `layerMemory` (TestClock) and `layerRedis` (a real redis-server of the test's own), then what
 * only the shared store has: leases of dead workers, a settle resent after a lost reply, a store
 * that lost its state, Redis down (fail or local).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Budget from "../src/Budget.js"
import * as LLMError from "../src/LLMError.js"
import * as SharedState from "../src/SharedState.js"
import { contract } from "./BudgetStore.contract.js"
import * as RedisHarness from "./redis.js"

class Redis extends Context.Tag("test/BudgetRedis")<Redis, RedisHarness.RedisServer>() {}
const RedisLive = Layer.scoped(Redis, RedisHarness.make())

let namespaces = 0
const freshNamespace = () => `b${process.pid}-${Date.now()}-${++namespaces}`

const connect = (url: string, namespace: string, timeout = 250) =>
  Effect.map(
    Layer.build(SharedState.layerRedis({ url: Redacted.make(url), namespace, timeout: Duration.millis(timeout) })),
    (context) => Context.get(context, SharedState.SharedState)
  )

const onState = (state: SharedState.Service, options: Budget.Options & Budget.SharedOptions) =>
  Effect.provideService(Budget.makeShared(options), SharedState.SharedState, state)

const realSleep = (millis: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, millis)))

const openai: Budget.Call = { provider: "openai" }

describe("Budget store contract: layerMemory (TestClock)", () => {
  contract<never>({
    name: "memory",
    make: (options) =>
      Effect.gen(function*() {
        const state = yield* SharedState.make
        const first = yield* onState(state, options)
        return { first, second: first }
      }),
    advance: (millis) => TestClock.adjust(Duration.millis(millis)),
    test: (name, body) => it.scoped(name, () => body())
  })
})

layer(RedisLive, { excludeTestServices: true })("Budget store contract: layerRedis (a real redis-server)", (it) => {
  contract({
    name: "redis",
    make: (options) =>
      Effect.gen(function*() {
        const redis = yield* Redis
        const namespace = freshNamespace()
        const first = yield* onState(yield* connect(redis.url, namespace), options)
        const second = yield* onState(yield* connect(redis.url, namespace), options)
        return { first, second }
      }),
    advance: realSleep,
    test: (name, body) => it.scoped(name, body)
  })

  it.scoped("a dead worker's reservation is charged in full when its lease expires, and freed from reserved", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      const namespace = freshNamespace()
      const options = { total: { usd: 1 }, lease: Duration.millis(200) }
      const dead = yield* onState(yield* connect(redis.url, namespace), options)
      const alive = yield* onState(yield* connect(redis.url, namespace), options)
      yield* dead.reserve(openai, { usd: 0.4, tokens: 100 }) // never settled: the worker died
      expect((yield* alive.state(Budget.Target.total)).reserved).toEqual({ usd: 0.4, tokens: 100 })
      yield* realSleep(300)
      expect(yield* alive.state(Budget.Target.total)).toEqual({
        spent: { usd: 0.4, tokens: 100 },
        reserved: { usd: 0, tokens: 0 }
      })
      // The lease charged it: 0.6 left, not 1.
      expect(Exit.isFailure(yield* Effect.exit(alive.reserve(openai, { usd: 0.7, tokens: 0 })))).toBe(true)
      const r = yield* alive.reserve(openai, { usd: 0.6, tokens: 0 })
      yield* r.settle({ usd: 0.6, tokens: 0 })
      expect((yield* alive.spent(Budget.Target.total)).usd).toBe(1)
    }))

  it.scoped("a late settle after the lease charged the reservation corrects the charge to the actual spend", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      const budget = yield* onState(yield* connect(redis.url, freshNamespace()), {
        total: { usd: 1 },
        lease: Duration.millis(150)
      })
      const slow = yield* budget.reserve(openai, { usd: 0.4, tokens: 100 })
      yield* realSleep(250)
      expect((yield* budget.state(Budget.Target.total)).spent).toEqual({ usd: 0.4, tokens: 100 })
      yield* slow.settle({ usd: 0.1, tokens: 30 })
      expect(yield* budget.state(Budget.Target.total)).toEqual({
        spent: { usd: 0.1, tokens: 30 },
        reserved: { usd: 0, tokens: 0 }
      })
    }))

  it.scoped("a settle whose reply was lost is resent and applied once (totals exact)", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      const namespace = freshNamespace()
      const state = yield* connect(redis.url, namespace)
      // Redis applies the settle, then the reply is lost (the first time of each reservation).
      const lost = new Set<string>()
      let resent = 0
      const lossy: SharedState.Service = {
        ...state,
        redis: {
          ...state.redis!,
          run: (operation, script, keys, args) =>
            Effect.flatMap(state.redis!.run(operation, script, keys, args), (reply) => {
              if (operation !== "budget.settle") return Effect.succeed(reply)
              const id = String(args[1])
              if (lost.has(id)) {
                resent++
                return Effect.succeed(reply)
              }
              lost.add(id)
              return Effect.fail(
                new LLMError.SharedStateUnavailableError({ provider: "shared-state", message: "reply lost" })
              )
            })
        }
      }
      const budget = yield* onState(lossy, { total: { usd: 1 } })
      for (let i = 0; i < 10; i++) {
        const r = yield* budget.reserve(openai, { usd: 0.1, tokens: 10 })
        yield* r.settle({ usd: 0.07, tokens: 7 })
      }
      expect(resent).toBe(10)
      const other = yield* onState(yield* connect(redis.url, namespace), { total: { usd: 1 } })
      const total = yield* other.state(Budget.Target.total)
      expect(total.spent.usd).toBeCloseTo(0.7, 12)
      expect(total.spent.tokens).toBe(70)
      expect(total.reserved).toEqual({ usd: 0, tokens: 0 })
    }))

  it.scoped("a Redis that lost its state (FLUSHALL): reserve refuses with SharedStateUnavailableError until reset", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      const namespace = freshNamespace()
      const budget = yield* onState(yield* connect(redis.url, namespace), { total: { usd: 1 } })
      yield* budget.record(openai, { usd: 0.9, tokens: 0 })
      yield* redis.flushall
      const refused = yield* Effect.flip(budget.reserve(openai, { usd: 0.5, tokens: 0 }))
      expect(refused._tag).toBe("SharedStateUnavailableError")
      expect(refused.message).toContain("lost its state")
      // local mode does not cover a lost state either
      const local = yield* onState(yield* connect(redis.url, namespace), { total: { usd: 1 }, onUnavailable: "local" })
      yield* redis.flushall
      expect((yield* Effect.flip(local.reserve(openai, { usd: 0.5, tokens: 0 })))._tag).toBe(
        "SharedStateUnavailableError"
      )
      // An operator reseeds (reset): reservations resume.
      yield* budget.reset
      const r = yield* budget.reserve(openai, { usd: 0.5, tokens: 0 })
      yield* r.settle({ usd: 0.5, tokens: 0 })
      expect((yield* budget.spent(Budget.Target.total)).usd).toBe(0.5)
    }))
})

describe("Budget on a Redis that goes away", () => {
  it.live("Redis killed mid-run: reserve fails with SharedStateUnavailableError within timeout + 50 ms", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      const budget = yield* onState(yield* connect(redis.url, freshNamespace(), 200), { total: { usd: 1 } })
      const r = yield* budget.reserve(openai, { usd: 0.1, tokens: 0 })
      yield* r.settle({ usd: 0.1, tokens: 0 })
      yield* redis.kill
      for (let i = 0; i < 3; i++) {
        const started = Date.now()
        const error = yield* Effect.flip(budget.reserve(openai, { usd: 0.1, tokens: 0 }))
        expect(error._tag).toBe("SharedStateUnavailableError")
        expect(error.isRetryable).toBe(true)
        expect(Date.now() - started).toBeLessThanOrEqual(250)
      }
      // SIGSTOP: the server holds the connection and answers nothing; the timeout bounds it.
      yield* redis.start
      yield* realSleep(300)
      yield* redis.pause
      const started = Date.now()
      const stalled = yield* Effect.flip(budget.reserve(openai, { usd: 0.1, tokens: 0 }))
      expect(stalled._tag).toBe("SharedStateUnavailableError")
      expect(Date.now() - started).toBeLessThanOrEqual(250)
      yield* redis.resume
    })))

  it.live("Redis killed mid-run with onUnavailable: local: calls go on on a local budget, with a metric", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      const budget = yield* onState(yield* connect(redis.url, freshNamespace(), 200), {
        total: { usd: 1 },
        onUnavailable: "local"
      })
      const before = (yield* Metric.value(Metric.tagged(Budget.sharedFallbacks, "operation", "reserve"))).count
      yield* redis.kill
      const r = yield* budget.reserve(openai, { usd: 0.1, tokens: 0 })
      yield* r.settle({ usd: 0.05, tokens: 0 })
      expect((yield* budget.spent(Budget.Target.total)).usd).toBe(0.05)
      const after = (yield* Metric.value(Metric.tagged(Budget.sharedFallbacks, "operation", "reserve"))).count
      expect(after - before).toBe(1)
    })))

  it.live("Redis restarted without persistence: budgets refuse, never exceed", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* RedisHarness.make()
      const namespace = freshNamespace()
      const budget = yield* onState(yield* connect(redis.url, namespace, 200), { total: { usd: 1 } })
      yield* budget.record(openai, { usd: 0.95, tokens: 0 })
      yield* redis.restart
      yield* realSleep(300)
      let refused = 0
      for (let i = 0; i < 5; i++) {
        const exit = yield* Effect.exit(budget.reserve(openai, { usd: 0.5, tokens: 0 }))
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit) && JSON.stringify(exit.cause).includes("lost its state")) refused++
      }
      expect(refused).toBe(5)
    })))
})
