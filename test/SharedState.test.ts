/**
 * The `SharedState` contract (test/SharedState.contract.ts) against `layerMemory` on the
 * TestClock and against `layerRedis` on a real redis-server of the test's own (real time), plus
 * what only the Redis store has: NOSCRIPT recovery, timeouts, a release that never dies, a
 * redacted URL.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as SharedState from "../src/SharedState.js"
import * as RedisHarness from "./redis.js"
import { contract } from "./SharedState.contract.js"

class Redis extends Context.Tag("test/Redis")<Redis, RedisHarness.RedisServer>() {}
const RedisLive = Layer.scoped(Redis, RedisHarness.make())

let namespaces = 0
const freshNamespace = () => `t${process.pid}-${Date.now()}-${++namespaces}`

const connect = (url: string, namespace: string, timeout = 250) =>
  Effect.map(
    Layer.build(SharedState.layerRedis({ url: Redacted.make(url), namespace, timeout: Duration.millis(timeout) })),
    (context) => Context.get(context, SharedState.SharedState)
  )

const realSleep = (millis: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, millis)))

describe("SharedState contract: layerMemory (TestClock)", () => {
  contract<never>({
    name: "memory",
    make: Effect.map(SharedState.make, (store) => ({ store, second: store })),
    advance: (millis) => TestClock.adjust(Duration.millis(millis)),
    test: (name, body) => it.scoped(name, () => body()),
    slackMillis: 1
  })
})

layer(RedisLive, { excludeTestServices: true })("SharedState contract: layerRedis (a real redis-server)", (it) => {
  contract({
    name: "redis",
    make: Effect.gen(function*() {
      const redis = yield* Redis
      const namespace = freshNamespace()
      return { store: yield* connect(redis.url, namespace), second: yield* connect(redis.url, namespace) }
    }),
    advance: realSleep,
    test: (name, body) => it.scoped(name, body),
    slackMillis: 40
  })

  it.effect("keys carry the namespace's hash tag and expire (no key without a TTL)", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* Redis
      const namespace = freshNamespace()
      const store = yield* connect(redis.url, namespace)
      yield* store.limiter.admit(
        "openai:gpt-4o",
        [{ name: "rpm", max: 10, period: Duration.seconds(60), cost: 1 }],
        "a1"
      )
      yield* store.limiter.cooldown("openai:gpt-4o", Duration.seconds(1), "c1")
      const tat = yield* redis.command("PTTL", `{orx:${namespace}}:rl:openai:gpt-4o:rpm`)
      const cool = yield* redis.command("PTTL", `{orx:${namespace}}:cool:openai:gpt-4o`)
      const op = yield* redis.command("PTTL", `{orx:${namespace}}:op:a1:admit`)
      for (const reply of [tat, cool, op]) expect(Number(reply.slice(1))).toBeGreaterThan(0)
      // The epoch has no TTL.
      expect(yield* redis.command("PTTL", `{orx:${namespace}}:epoch`)).toBe(":-1\r\n")
    })))

  it.effect("scripts are loaded lazily and reloaded after SCRIPT FLUSH (EVALSHA, then EVAL on NOSCRIPT)", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* Redis
      const store = yield* connect(redis.url, freshNamespace())
      const limit = [{ name: "rpm", max: 3, period: Duration.seconds(60), cost: 1 }]
      expect((yield* store.limiter.admit("p:m", limit, "n1"))._tag).toBe("Admitted")
      expect(yield* redis.command("SCRIPT", "FLUSH")).toBe("+OK\r\n")
      expect((yield* store.limiter.admit("p:m", limit, "n2"))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", limit, "n3"))._tag).toBe("Admitted")
      expect((yield* store.limiter.admit("p:m", limit, "n4"))._tag).toBe("Wait")
    })))

  it.effect("a stalled server (SIGSTOP): the call fails with SharedStateUnavailableError within its timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* Redis
      const store = yield* connect(redis.url, freshNamespace(), 100)
      yield* redis.pause
      yield* Effect.addFinalizer(() => redis.resume)
      const started = Date.now()
      const exit = yield* Effect.exit(
        store.limiter.admit("p:m", [{ name: "rpm", max: 3, period: Duration.seconds(60), cost: 1 }], "s1")
      )
      const took = Date.now() - started
      yield* redis.resume
      expect(took).toBeLessThan(100 + 50)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toMatchObject({
        _tag: "Some",
        value: { _tag: "SharedStateUnavailableError", operation: "limiter.admit" }
      })
    })))

  it.effect("closing the layer while the server is stopped or dead is never a defect", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      for (const fault of ["pause", "kill"] as const) {
        const scope = yield* Scope.make()
        const store = yield* Scope.extend(connect(redis.url, freshNamespace(), 100), scope)
        yield* store.limiter.cooldownRemaining("p:m")
        yield* fault === "pause" ? redis.pause : redis.kill
        const started = Date.now()
        const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
        expect(Date.now() - started).toBeLessThan(1_500)
        expect(Exit.isSuccess(exit)).toBe(true)
        yield* fault === "pause" ? redis.resume : redis.start
      }
    }))

  it.effect("a dead server: calls fail fast and typed; the client reconnects when it is back", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* Redis
      const store = yield* connect(redis.url, freshNamespace(), 200)
      yield* redis.kill
      const started = Date.now()
      const exit = yield* Effect.exit(store.limiter.cooldownRemaining("p:m"))
      expect(Date.now() - started).toBeLessThan(250)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toMatchObject({
        value: { _tag: "SharedStateUnavailableError" }
      })
      yield* redis.start
      // Reconnect backoff is at most 1 s.
      let back = false
      for (let i = 0; i < 60 && !back; i++) {
        back = Exit.isSuccess(yield* Effect.exit(store.limiter.cooldownRemaining("p:m")))
        if (!back) yield* realSleep(50)
      }
      expect(back).toBe(true)
      // No persistence: the epoch is gone, and health says so.
      expect((yield* store.health).epochIntact).toBe(false)
    })))

  it.effect("no server at all: the layer fails with SharedStateUnavailableError, and the URL's password never shows", () =>
    Effect.gen(function*() {
      const redis = yield* Redis
      const url = `redis://:hunter2@127.0.0.1:${redis.port + 1}`
      const started = Date.now()
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(SharedState.layerRedis({
        url: Redacted.make(url),
        connectTimeout: Duration.millis(300)
      }))))
      expect(Date.now() - started).toBeLessThan(300 + 200)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const text = Cause.pretty(exit.cause)
        expect(text).toContain("SharedStateUnavailableError")
        expect(text).not.toContain("hunter2")
      }
    }))
})
