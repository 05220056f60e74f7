/**
 * Circuit breakers on `SharedState.layerRedis`: two workers (two connections to a real
 * redis-server of the test's own) share one breaker per provider; half-open lets exactly one
 * trial through across both; Redis gone: each worker's own breaker decides, with a metric.
 */
import { expect, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as LLMError from "../src/LLMError.js"
import * as SharedState from "../src/SharedState.js"
import * as RedisHarness from "./redis.js"

class Redis extends Context.Tag("test/BreakerRedis")<Redis, RedisHarness.RedisServer>() {}

const unavailable = new LLMError.ProviderUnavailableError({ provider: "p", message: "overloaded", status: 529 })
const realSleep = (millis: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, millis)))

const worker = (
  url: string,
  namespace: string,
  options: Partial<CircuitBreaker.Options> & { readonly trialLease?: Duration.DurationInput } = {}
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      SharedState.layerRedis({ url: Redacted.make(url), namespace, timeout: Duration.millis(200) })
    )
    return yield* Effect.provide(
      CircuitBreaker.makeShared({ provider: "p", failureThreshold: 3, resetTimeout: "300 millis", ...options }),
      context
    )
  })

let namespaces = 0
const freshNamespace = () => `cb${process.pid}-${Date.now()}-${++namespaces}`

layer(Layer.scoped(Redis, RedisHarness.make()), { excludeTestServices: true })(
  "CircuitBreaker shared by two workers on Redis",
  (it) => {
    it.scoped("failures on two workers open one breaker; half-open lets exactly one trial through across both", () =>
      Effect.gen(function*() {
        const redis = yield* Redis
        const namespace = freshNamespace()
        const a = yield* worker(redis.url, namespace)
        const b = yield* worker(redis.url, namespace)
        // 3 consecutive failures, spread over both workers, open it for both.
        yield* Effect.exit(a.protect(Effect.fail(unavailable)))
        yield* Effect.exit(b.protect(Effect.fail(unavailable)))
        expect(yield* a.state).toBe("Closed")
        yield* Effect.exit(a.protect(Effect.fail(unavailable)))
        expect(yield* b.state).toBe("Open")
        let reached = 0
        const refused = yield* Effect.exit(b.protect(Effect.sync(() => reached++)))
        expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("CircuitOpenError")
        expect(reached).toBe(0)

        yield* realSleep(350)
        // 40 callers race on both workers: exactly one trial reaches the provider.
        const trial = Effect.zipRight(Effect.sync(() => reached++), Effect.as(realSleep(100), "ok"))
        const outcomes = yield* Effect.all(
          Array.from({ length: 40 }, (_, i) => Effect.exit((i % 2 === 0 ? a : b).protect(trial))),
          { concurrency: "unbounded" }
        )
        expect(reached).toBe(1)
        expect(outcomes.filter(Exit.isSuccess)).toHaveLength(1)
        // Its success closes the breaker for both.
        expect(yield* a.state).toBe("Closed")
        expect(yield* b.state).toBe("Closed")
        expect(yield* b.protect(Effect.succeed(1))).toBe(1)
      }))

    it.scoped("a failed trial reopens for both; a trial whose worker died frees its slot after its lease", () =>
      Effect.gen(function*() {
        const redis = yield* Redis
        const namespace = freshNamespace()
        const a = yield* worker(redis.url, namespace, { failureThreshold: 1 })
        const b = yield* worker(redis.url, namespace, { failureThreshold: 1 })
        yield* Effect.exit(a.protect(Effect.fail(unavailable)))
        yield* realSleep(350)
        yield* Effect.exit(b.protect(Effect.fail(unavailable))) // the trial fails
        expect(yield* a.state).toBe("Open")
        // A trial that never ends (its worker died): its lease (200 ms here) frees the slot.
        const dying = yield* worker(redis.url, namespace, { failureThreshold: 1, trialLease: "200 millis" })
        yield* realSleep(350)
        const fiber = yield* Effect.fork(dying.protect(Effect.never))
        yield* realSleep(50)
        expect(Exit.isFailure(yield* Effect.exit(a.protect(Effect.succeed(1))))).toBe(true)
        yield* realSleep(250)
        expect(yield* a.protect(Effect.succeed(2))).toBe(2)
        expect(yield* b.state).toBe("Closed")
        void fiber
      }))
  }
)

it.live("Redis killed: each worker's own breaker decides, with a log line and a metric", () =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* RedisHarness.make()
    const a = yield* worker(redis.url, freshNamespace(), { failureThreshold: 2 })
    const tagged = Metric.tagged(CircuitBreaker.sharedFallbacks, "operation", "admit")
    const before = (yield* Metric.value(tagged)).count
    yield* redis.kill
    expect(yield* a.protect(Effect.succeed(1))).toBe(1)
    yield* Effect.exit(a.protect(Effect.fail(unavailable)))
    yield* Effect.exit(a.protect(Effect.fail(unavailable)))
    const started = Date.now()
    const refused = yield* Effect.exit(a.protect(Effect.succeed(3)))
    expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("CircuitOpenError")
    expect(Date.now() - started).toBeLessThanOrEqual(250)
    expect((yield* Metric.value(tagged)).count - before).toBe(4)
  })))
