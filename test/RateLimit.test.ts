/**
 * `RateLimit` through the real SDKs against FakeProviderServer: in memory on the TestClock, and
 * on a real redis-server of the test's own with two "workers" (two separate `layerRedis`
 * connections in one process) sharing one limit; the store paused (SIGSTOP) and killed.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as Anthropic from "../src/providers/Anthropic.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as RateLimit from "../src/RateLimit.js"
import * as SharedState from "../src/SharedState.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import { awaitRequests, realPauses } from "./helpers.js"
import * as RedisHarness from "./redis.js"

const { Reply } = FakeProviderServer

const ask = (text: string, maxTokens = 100): LLM.CompletionRequest => ({ messages: [Message.user(text)], maxTokens })

const openai = (server: FakeProviderServer.Service) =>
  OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, defaultModel: "gpt-4o-mini" })

const anthropic = (server: FakeProviderServer.Service) =>
  Anthropic.make({
    apiKey: Redacted.make("sk-ant-test"),
    baseUrl: server.anthropicBaseUrl,
    defaultModel: "claude-sonnet-4-6"
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const rateLimited = (retryAfterSeconds: string) =>
  Reply.openaiError(429, { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" }, {
    "retry-after": retryAfterSeconds
  })

layer(FakeProviderServer.layer())("RateLimit in memory (real SDKs, FakeProviderServer, TestClock)", (it) => {
  const setup = Effect.gen(function*() {
    const server = yield* FakeProviderServer.FakeProviderServer
    yield* server.reset
    return server
  })

  it.scoped("rpm: a burst of rpm calls goes at once; the next waits its turn on the clock, then goes", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* RateLimit.withRateLimit(yield* openai(server), {
        limits: { "openai:gpt-4o-mini": { rpm: 3 } }
      })
      const fibers = yield* Effect.forEach([1, 2, 3, 4], (i) => Effect.fork(llm.complete(ask(`call ${i}`))))
      yield* awaitRequests(server, 3)
      yield* realPauses(30)
      expect((yield* server.requests).length).toBe(3)
      // One request per 20 s refills.
      yield* TestClock.adjust(Duration.seconds(20))
      yield* awaitRequests(server, 4)
      yield* Effect.forEach(fibers, Fiber.join)
    }))

  it.scoped("a wait over maxWait fails at once with a local RateLimitError: retryAfter set, no status, no request", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* RateLimit.withRateLimit(yield* openai(server), {
        limits: { openai: { rpm: 1 } },
        maxWait: Duration.seconds(10)
      })
      yield* llm.complete(ask("first"))
      const error = failureOf(yield* Effect.exit(llm.complete(ask("second"))))
      expect(error?._tag).toBe("RateLimitError")
      if (error?._tag !== "RateLimitError") return
      expect(error.status).toBeUndefined()
      expect(error.provider).toBe("openai")
      expect(Duration.toMillis(Option.getOrThrow(error.retryAfter))).toBe(60_000)
      expect(LLMError.isRetryable(error)).toBe(true)
      expect((yield* server.requests).length).toBe(1)
    }))

  it.scoped("tpm: tokens are reserved from the forecast and corrected by the actual usage", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler(() => Reply.scripted({ text: "ok", usage: { inputTokens: 10, outputTokens: 50 } }))
      const provider = yield* openai(server)
      const forecast = yield* provider.forecast(ask("hello", 4_000))
      const limit = 2 * (forecast.inputTokens + forecast.maxOutputTokens) + 100
      const llm = yield* RateLimit.withRateLimit(provider, {
        limits: { openai: { tpm: limit } },
        maxWait: 0
      })
      // Each call reserves ~4000 tokens and uses 60: without the correction, the third would have to wait.
      for (let i = 0; i < 10; i++) yield* llm.complete(ask("hello", 4_000))
      expect((yield* server.requests).length).toBe(10)
    }))

  it.scoped("tpm: a stream is corrected at its Finish too", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.setHandler(() => Reply.scripted({ text: ["o", "k"], usage: { inputTokens: 10, outputTokens: 50 } }))
      const provider = yield* openai(server)
      const forecast = yield* provider.forecast(ask("hello", 4_000))
      const llm = yield* RateLimit.withRateLimit(provider, {
        limits: { openai: { tpm: 2 * (forecast.inputTokens + forecast.maxOutputTokens) + 100 } },
        maxWait: 0
      })
      for (let i = 0; i < 5; i++) yield* Stream.runDrain(llm.stream(ask("hello", 4_000)))
      expect((yield* server.requests).length).toBe(5)
    }))

  it.scoped("a provider 429 with retry-after sets a cooldown every caller on the store sees", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(rateLimited("2"))
      const state = yield* SharedState.make
      const provider = yield* openai(server)
      const limits: RateLimit.Options = { limits: { openai: { rpm: 1_000 } }, maxWait: Duration.seconds(1) }
      // Two callers, each with its own limiter, on one store.
      const a = yield* Effect.provideService(RateLimit.withRateLimit(provider, limits), SharedState.SharedState, state)
      const b = yield* Effect.provideService(RateLimit.withRateLimit(provider, limits), SharedState.SharedState, state)
      const first = failureOf(yield* Effect.exit(a.complete(ask("first"))))
      expect(first).toMatchObject({ _tag: "RateLimitError", status: 429 })
      const second = failureOf(yield* Effect.exit(b.complete(ask("second"))))
      expect(second?._tag).toBe("RateLimitError")
      if (second?._tag !== "RateLimitError") return
      expect(second.status).toBeUndefined()
      expect(Duration.toMillis(Option.getOrThrow(second.retryAfter))).toBe(2_000)
      expect((yield* server.requests).length).toBe(1)
      // Within maxWait once the cooldown is nearly over: it waits, then goes.
      yield* TestClock.adjust(Duration.millis(1_500))
      const third = yield* Effect.fork(b.complete(ask("third")))
      yield* TestClock.adjust(Duration.millis(500))
      yield* Fiber.join(third)
      expect((yield* server.requests).length).toBe(2)
    }))

  it.scoped("a 429 without retry-after but with x-ratelimit-remaining-requests: 0 stops callers until its reset", () =>
    Effect.gen(function*() {
      const server = yield* setup
      yield* server.enqueue(
        Reply.openaiError(429, { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" }, {
          "x-ratelimit-limit-requests": "500",
          "x-ratelimit-remaining-requests": "0",
          "x-ratelimit-reset-requests": "2s"
        })
      )
      const llm = yield* RateLimit.withRateLimit(yield* openai(server), {
        limits: { openai: { rpm: 500 } },
        maxWait: Duration.seconds(1)
      })
      const first = failureOf(yield* Effect.exit(llm.complete(ask("first"))))
      expect(first).toMatchObject({ _tag: "RateLimitError", status: 429 })
      expect(first?._tag === "RateLimitError" && Option.isNone(first.retryAfter)).toBe(true)
      const second = failureOf(yield* Effect.exit(llm.complete(ask("second"))))
      expect(second?._tag === "RateLimitError" && second.status).toBeUndefined()
      expect(second?._tag === "RateLimitError" && Duration.toMillis(Option.getOrThrow(second.retryAfter))).toBe(2_000)
      expect((yield* server.requests).length).toBe(1)
    }))

  it.scoped("the rate-limit headers of a successful reply are exposed and tighten the limit (complete and stream)", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "120ms"
      }
      const completion = {
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 0,
        model: "gpt-4o-mini",
        choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 }
      }
      yield* server.enqueue(Reply.json(completion, { headers }))
      const provider = yield* openai(server)
      // The provider exposes them on a successful reply (and sends none when it got none).
      expect((yield* provider.complete(ask("bare"))).rateLimits).toEqual(headers)
      expect((yield* provider.complete(ask("no headers"))).rateLimits).toBeUndefined()
      yield* server.enqueue(Reply.json(completion, { headers }))
      const llm = yield* RateLimit.withRateLimit(provider, { limits: { openai: { rpm: 500 } }, maxWait: 0 })
      const reply = yield* llm.complete(ask("first"))
      expect(reply.rateLimits).toEqual(headers)
      // The provider said 1 left: one more goes, the next is refused locally.
      yield* llm.complete(ask("second"))
      const third = failureOf(yield* Effect.exit(llm.complete(ask("third"))))
      expect(third?._tag === "RateLimitError" && third.status).toBeUndefined()
      expect((yield* server.requests).length).toBe(4)
      // A stream's Finish carries them too.
      yield* server.enqueue(Reply.sse([
        FakeProviderServer.SseItem.event({
          id: "c",
          object: "chat.completion.chunk",
          created: 0,
          model: "gpt-4o-mini",
          choices: [{ index: 0, delta: { content: "ok" }, finish_reason: "stop" }]
        }),
        FakeProviderServer.SseItem.event({
          id: "c",
          object: "chat.completion.chunk",
          created: 0,
          model: "gpt-4o-mini",
          choices: [],
          usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 }
        }),
        FakeProviderServer.SseItem.raw("data: [DONE]\n\n")
      ], { headers }))
      const events = yield* Stream.runCollect(provider.stream(ask("stream")))
      const finish = Array.from(events).find((e) => e._tag === "Finish")
      expect(finish?._tag === "Finish" && finish.rateLimits).toEqual(headers)
    }))

  it.scoped("Anthropic itpm / otpm: a call whose output cap exceeds otpm can never pass (not retryable, no request)", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* RateLimit.withRateLimit(yield* anthropic(server), {
        limits: { anthropic: { rpm: 50, itpm: 30_000, otpm: 1_000 } },
        maxWait: 0
      })
      yield* llm.complete(ask("fits", 1_000))
      const error = failureOf(yield* Effect.exit(llm.complete(ask("too big", 1_200))))
      expect(error).toMatchObject({ _tag: "RateLimitError", retryable: false })
      expect(error?.message).toContain("otpm")
      expect((yield* server.requests).length).toBe(1)
    }))

  it.scoped("a provider or model without limits is passed through untouched", () =>
    Effect.gen(function*() {
      const server = yield* setup
      const llm = yield* RateLimit.withRateLimit(yield* openai(server), { limits: { "openai:gpt-4o": { rpm: 1 } } })
      for (let i = 0; i < 3; i++) yield* llm.complete(ask("free"))
      expect((yield* server.requests).length).toBe(3)
    }))
})

// -----------------------------------------------------------------------------
// On a real redis-server: two workers, faults
// -----------------------------------------------------------------------------

class Redis extends Context.Tag("test/RateLimit/Redis")<Redis, RedisHarness.RedisServer>() {}

let namespaces = 0

/** A "worker": its own Redis connection (its own scope's layer) and its own limiter over one provider. */
const worker = (
  redis: RedisHarness.RedisServer,
  namespace: string,
  provider: LLM.Service,
  options: RateLimit.Options,
  timeoutMillis = 250
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      SharedState.layerRedis({ url: Redacted.make(redis.url), namespace, timeout: Duration.millis(timeoutMillis) })
    )
    return yield* Effect.provide(RateLimit.withRateLimit(provider, options), context)
  })

const TestEnv = Layer.merge(FakeProviderServer.layer(), Layer.scoped(Redis, RedisHarness.make()))

layer(TestEnv, { excludeTestServices: true })("RateLimit on Redis (real server, real time)", (it) => {
  const setup = Effect.gen(function*() {
    const server = yield* FakeProviderServer.FakeProviderServer
    yield* server.reset
    return { server, redis: yield* Redis, namespace: `rl${process.pid}-${++namespaces}` }
  })

  it.scoped("two workers share one limit: exactly rpm calls reach the provider, the rest fail locally", () =>
    Effect.gen(function*() {
      const { namespace, redis, server } = yield* setup
      const provider = yield* openai(server)
      const options: RateLimit.Options = { limits: { openai: { rpm: 5, period: Duration.minutes(1) } }, maxWait: 0 }
      const a = yield* worker(redis, namespace, provider, options)
      const b = yield* worker(redis, namespace, provider, options)
      const exits = yield* Effect.forEach(
        [a, b, a, b, a, b, a, b],
        (llm, i) => Effect.exit(llm.complete(ask(`call ${i}`))),
        { concurrency: 4 }
      )
      expect(exits.filter(Exit.isSuccess).length).toBe(5)
      for (const exit of exits.filter(Exit.isFailure)) {
        const error = failureOf(exit)
        expect(error?._tag).toBe("RateLimitError")
        expect(error?.status).toBeUndefined()
      }
      expect((yield* server.requests).length).toBe(5)
    }))

  it.scoped("one worker's 429 (retry-after 0.3) stops the other for 300 ms, then it goes", () =>
    Effect.gen(function*() {
      const { namespace, redis, server } = yield* setup
      yield* server.enqueue(rateLimited("0.3"))
      const provider = yield* openai(server)
      const options: RateLimit.Options = { limits: { openai: { rpm: 1_000 } }, maxWait: Duration.seconds(2) }
      const a = yield* worker(redis, namespace, provider, options)
      const b = yield* worker(redis, namespace, provider, options)
      expect(failureOf(yield* Effect.exit(a.complete(ask("first"))))).toMatchObject({ status: 429 })
      const at429 = Date.now()
      yield* b.complete(ask("second"))
      const requests = yield* server.requests
      expect(requests.length).toBe(2)
      expect(Date.now() - at429).toBeGreaterThanOrEqual(280)
    }))

  it.scoped("the store stalled (SIGSTOP): calls go on under local limits, bounded latency, a log line and a metric", () =>
    Effect.gen(function*() {
      const { namespace, redis, server } = yield* setup
      const provider = yield* openai(server)
      const llm = yield* worker(redis, namespace, provider, { limits: { openai: { rpm: 1_000 } }, maxWait: 0 }, 100)
      yield* llm.complete(ask("before"))
      const fallbacksBefore = (yield* Metric.value(Metric.tagged(RateLimit.fallbacks, "operation", "admit"))).count
      yield* redis.pause
      yield* Effect.addFinalizer(() => redis.resume)
      const latencies: Array<number> = []
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      for (let i = 0; i < 5; i++) {
        const started = Date.now()
        yield* llm.complete(ask(`during ${i}`)).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        latencies.push(Date.now() - started)
      }
      expect(warnings.filter((w) => w.includes("shared state unavailable")).length).toBe(1)
      yield* redis.resume
      // The first call waited out the store's timeout (100 ms), the next went straight to local limits.
      expect(latencies[0]).toBeLessThan(100 + 150)
      for (const l of latencies.slice(1)) expect(l).toBeLessThan(100)
      const fallbacksAfter = (yield* Metric.value(Metric.tagged(RateLimit.fallbacks, "operation", "admit"))).count
      expect(fallbacksAfter - fallbacksBefore).toBe(5)
      expect((yield* server.requests).length).toBe(6)
    }))

  it.scoped("the store killed, then back: local limits meanwhile, the shared store again after retryStoreAfter", () =>
    Effect.gen(function*() {
      const { namespace, redis, server } = yield* setup
      const provider = yield* openai(server)
      const options: RateLimit.Options = {
        limits: { openai: { rpm: 3, period: Duration.minutes(1) } },
        maxWait: 0,
        retryStoreAfter: Duration.millis(100)
      }
      const a = yield* worker(redis, namespace, provider, options)
      yield* a.complete(ask("shared 1"))
      yield* redis.kill
      // Local limits are this process's own: a fresh bucket of 3.
      const local = yield* Effect.forEach([1, 2, 3, 4], (i) => Effect.exit(a.complete(ask(`local ${i}`))))
      expect(local.filter(Exit.isSuccess).length).toBe(3)
      expect(failureOf(local[3]!)?._tag).toBe("RateLimitError")
      expect(failureOf(local[3]!)?.status).toBeUndefined()
      yield* redis.start
      // Back on the (emptied: no persistence) shared store after the client reconnects.
      let shared = false
      for (let i = 0; i < 60 && !shared; i++) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
        shared = Exit.isSuccess(yield* Effect.exit(a.complete(ask(`again ${i}`))))
      }
      expect(shared).toBe(true)
    }))
})

describe("RateLimit.parseHeaders", () => {
  it("reads OpenAI's durations and Anthropic's RFC 3339 resets", () => {
    const now = new Date("2026-12-08T00:00:00Z")
    expect(RateLimit.parseHeaders({
      "x-ratelimit-remaining-requests": "3",
      "x-ratelimit-reset-requests": "6m0s",
      "X-RateLimit-Remaining-Tokens": "1200",
      "x-ratelimit-reset-tokens": "20ms",
      "anthropic-ratelimit-output-tokens-remaining": "0",
      "anthropic-ratelimit-output-tokens-reset": "2026-12-08T00:00:01.500Z",
      "anthropic-ratelimit-input-tokens-remaining": "lots"
    }, now)).toEqual([
      { limit: "rpm", remaining: 3, reset: Duration.millis(360_000) },
      { limit: "tpm", remaining: 1200, reset: Duration.millis(20) },
      { limit: "otpm", remaining: 0, reset: Duration.millis(1_500) }
    ])
  })
})

describe("RateLimit: layer", () => {
  it.effect("RateLimit.layer wraps the LLM in context", () =>
    Effect.gen(function*() {
      const { MockLLM } = yield* Effect.promise(() => import("../src/testing/index.js"))
      const program = Effect.gen(function*() {
        const { LLM: Tag } = yield* Effect.promise(() => import("../src/LLM.js"))
        const llm = yield* Tag
        yield* llm.complete(ask("one"))
        return yield* Effect.exit(llm.complete(ask("two")))
      })
      const exit = yield* program.pipe(
        Effect.provide(Layer.provide(
          RateLimit.layer({ limits: { mock: { rpm: 1 } }, maxWait: 0 }),
          MockLLM.layer([MockLLM.reply({ text: "a" }), MockLLM.reply({ text: "b" })])
        ))
      )
      expect(failureOf(exit)).toMatchObject({ _tag: "RateLimitError" })
    }))
})
