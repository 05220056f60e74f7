import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import { pipe } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as OpenAI from "../src/providers/OpenAI.js"
import * as Resilience from "../src/Resilience.js"
import * as Response from "../src/Response.js"
import * as Telemetry from "../src/Telemetry.js"
import * as FakeProviderServer from "../src/testing/FakeProviderServer.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import { awaitRequests, awaitSleepAt, events, realPauses } from "./helpers.js"

const request: LLM.CompletionRequest = { messages: [Message.user("Hi")] }

const rateLimited = (retryAfter?: Duration.DurationInput) =>
  new LLMError.RateLimitError({
    provider: "mock",
    message: "slow down",
    status: 429,
    retryAfter: retryAfter === undefined ? Option.none() : Option.some(Duration.decode(retryAfter))
  })

const unavailable = (n: number) =>
  new LLMError.ProviderUnavailableError({ provider: "mock", message: `overloaded #${n}`, status: 529 })

const { Reply } = FakeProviderServer

const openai = (server: FakeProviderServer.Service, providerId: string) =>
  OpenAI.make({ apiKey: Redacted.make("sk-test"), baseUrl: server.openaiBaseUrl, providerId })

/** The stream with its events after the first delayed by `gap` each (on Effect's Clock). */
const gapsAfterFirst = <E>(stream: Stream.Stream<Response.StreamEvent, E>, gap: Duration.DurationInput) =>
  stream.pipe(
    Stream.zipWithIndex,
    Stream.mapEffect(([event, i]) => i === 0 ? Effect.succeed(event) : Effect.as(Effect.sleep(gap), event))
  )

const calls = (llm: MockLLM.Service) => Effect.map(llm.requests, (requests) => requests.length)

/** Runs an effect in a fiber while the test clock moves far ahead. */
const withClock = <A, E, R>(effect: Effect.Effect<A, E, R>, ahead: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(ahead)
    return yield* Fiber.join(fiber)
  })

describe("Resilience", () => {
  describe("retry metric", () => {
    it.effect("withRetry counts each retry in llm.retries, tagged with the error that caused it", () =>
      Effect.gen(function*() {
        const providerId = "retry-metric-test"
        const llm = yield* MockLLM.make([
          MockLLM.fail(rateLimited("1 second")),
          MockLLM.fail(new LLMError.ProviderUnavailableError({ provider: providerId, message: "busy" })),
          MockLLM.text("done"),
          MockLLM.fail(rateLimited("1 second")),
          MockLLM.text("streamed")
        ], { providerId })
        const retrying = Resilience.withRetry(llm, { jitter: false })
        yield* withClock(retrying.complete({ messages: [Message.user("Hi")] }))
        yield* withClock(Response.collect(retrying.stream({ messages: [Message.user("Hi")] })))
        const count = (error: string) =>
          Metric.value(Metric.taggedWithLabels(Telemetry.retries, Telemetry.labels(providerId, "mock-model", error)))
        expect((yield* count("RateLimitError")).count).toBe(2)
        expect((yield* count("ProviderUnavailableError")).count).toBe(1)
      }))
  })

  describe("retry of an Effect", () => {
    it.effect("waits the provider's retry-after before the next attempt", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(rateLimited("3 seconds")), MockLLM.text("done")])
        const fiber = yield* Effect.fork(Resilience.retry(llm.complete(request)))
        yield* TestClock.adjust("2999 millis")
        expect(yield* calls(llm)).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* calls(llm)).toBe(2)
        expect((yield* Fiber.join(fiber)).content).toBe("done")
        expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 1 })
      }))

    it.effect("waits the retry-after even above maxDelay", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(rateLimited("5 seconds")), MockLLM.text("done")])
        const fiber = yield* Effect.fork(Resilience.retry(llm.complete(request), { maxDelay: "1 second" }))
        yield* TestClock.adjust("4999 millis")
        expect(yield* calls(llm)).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect((yield* Fiber.join(fiber)).content).toBe("done")
      }))

    it.effect("does not retry errors that are not retryable", () =>
      Effect.gen(function*() {
        const notRetryable = [
          new LLMError.QuotaExceededError({ provider: "mock", message: "out of credit", status: 402 }),
          new LLMError.AuthenticationError({ provider: "mock", message: "bad key", status: 401 }),
          new LLMError.InvalidRequestError({ provider: "mock", message: "bad request", status: 400 })
        ]
        for (const error of notRetryable) {
          const llm = yield* MockLLM.make([MockLLM.fail(error), MockLLM.text("never")])
          expect(yield* Effect.flip(Resilience.retry(llm.complete(request)))).toBe(error)
          expect(yield* calls(llm)).toBe(1)
        }
      }))

    it.effect("retries up to maxRetries times", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.fail(unavailable(3)),
          MockLLM.text("fourth time lucky")
        ])
        const reply = yield* withClock(Resilience.retry(llm.complete(request), { maxRetries: 3 }))
        expect(reply.content).toBe("fourth time lucky")
        expect(yield* calls(llm)).toBe(4)
      }))

    it.effect("surfaces the last typed error once maxRetries are spent", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.fail(unavailable(3)),
          MockLLM.fail(unavailable(4)),
          MockLLM.text("too late")
        ])
        const error = yield* withClock(Effect.flip(Resilience.retry(llm.complete(request), { maxRetries: 3 })))
        expect(error).toBeInstanceOf(LLMError.ProviderUnavailableError)
        expect(error.message).toBe("overloaded #4")
        expect(yield* calls(llm)).toBe(4)
        expect(yield* llm.remaining).toBe(1)
      }))

    it.effect("does not retry when the provider asks to wait longer than maxRetryAfter", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(rateLimited("2 minutes")), MockLLM.text("never")])
        const error = yield* Effect.flip(Resilience.retry(llm.complete(request)))
        expect(error._tag).toBe("RateLimitError")
        expect(yield* calls(llm)).toBe(1)

        const custom = yield* MockLLM.make([MockLLM.fail(rateLimited("10 seconds")), MockLLM.text("never")])
        yield* Effect.flip(Resilience.retry(custom.complete(request), { maxRetryAfter: "5 seconds" }))
        expect(yield* calls(custom)).toBe(1)
      }))

    it.effect("caps each backoff delay at maxDelay", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(unavailable(1)), MockLLM.text("done")])
        const fiber = yield* Effect.fork(
          Resilience.retry(llm.complete(request), { baseDelay: "10 seconds", maxDelay: "1 second" })
        )
        yield* TestClock.adjust("999 millis")
        expect(yield* calls(llm)).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* calls(llm)).toBe(2)
        expect((yield* Fiber.join(fiber)).content).toBe("done")
      }))

    it.effect("backs off exponentially", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.fail(unavailable(3)),
          MockLLM.text("done")
        ])
        const fiber = yield* Effect.fork(
          Resilience.retry(llm.complete(request), { baseDelay: "100 millis", factor: 3, jitter: false })
        )
        // Attempts at 0, 100, 400 (100 + 300) and 1300 (400 + 900) ms.
        for (const [at, expected] of [[99, 1], [100, 2], [399, 2], [400, 3], [1299, 3], [1300, 4]] as const) {
          yield* TestClock.setTime(at)
          expect(yield* calls(llm)).toBe(expected)
        }
        expect((yield* Fiber.join(fiber)).content).toBe("done")
      }))

    it.effect("schedules no retry past maxElapsed", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.text("never")
        ])
        // Retry 1 would start at 1 s (within 2.5 s), retry 2 at 1 + 2 = 3 s (past it).
        const error = yield* withClock(Effect.flip(Resilience.retry(llm.complete(request), {
          baseDelay: "1 second",
          jitter: false,
          maxElapsed: "2500 millis"
        })))
        expect(error.message).toBe("overloaded #2")
        expect(yield* calls(llm)).toBe(2)
      }))

    it.effect("takes a ready schedule instead of options", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.text("ok")
        ])
        const error = yield* Effect.flip(Resilience.retry(llm.complete(request), Schedule.recurs(1)))
        expect(error.message).toBe("overloaded #2")
        expect(yield* calls(llm)).toBe(2)
      }))
  })

  describe("retry of a Stream", () => {
    it.effect("retries a stream that fails before its first event", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.chunks([], { failWith: unavailable(2) }),
          MockLLM.text("streamed")
        ])
        const out = yield* withClock(events(Resilience.retry(llm.stream(request))))
        expect(out.map((event) => event._tag)).toEqual(["TextDelta", "Finish"])
        expect(out[0]).toEqual({ _tag: "TextDelta", text: "streamed" })
        expect(yield* calls(llm)).toBe(3)
      }))

    it.effect("does not retry a stream that fails after an event: each event once, then the typed error", () =>
      Effect.gen(function*() {
        const error = unavailable(1)
        const llm = yield* MockLLM.make([MockLLM.chunks(["Hel", "lo"], { failWith: error }), MockLLM.text("again")])
        const out = yield* withClock(events(Stream.either(Resilience.retry(llm.stream(request)))))
        expect(out).toEqual([
          Either.right({ _tag: "TextDelta", text: "Hel" }),
          Either.right({ _tag: "TextDelta", text: "lo" }),
          Either.left(error)
        ])
        expect(yield* calls(llm)).toBe(1)
        expect(yield* llm.remaining).toBe(1)
      }))

    it.effect("retries each run of the stream afresh", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([
          MockLLM.chunks(["a"], { failWith: unavailable(1) }),
          MockLLM.fail(unavailable(2)),
          MockLLM.text("b")
        ])
        const retried = Resilience.retry(llm.stream(request))
        expect(yield* withClock(Effect.flip(Stream.runDrain(retried)))).toEqual(unavailable(1))
        // A second run starts with nothing emitted, so it may retry again.
        const second = yield* withClock(events(retried))
        expect(second[0]).toEqual({ _tag: "TextDelta", text: "b" })
        expect(yield* calls(llm)).toBe(3)
      }))
  })

  describe("dual forms", () => {
    it.effect("work data-first and data-last, on an Effect and a Stream", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make(() => MockLLM.text("ok"))
        const piped: Effect.Effect<Response.LLMResponse, LLMError.LLMError> = llm.complete(request).pipe(
          Resilience.retry({ maxRetries: 1 })
        )
        const direct: Effect.Effect<Response.LLMResponse, LLMError.LLMError> = Resilience.retry(
          llm.complete(request),
          { maxRetries: 1 }
        )
        const noOptions: Effect.Effect<Response.LLMResponse, LLMError.LLMError> = Resilience.retry(
          llm.complete(request)
        )
        const pipedStream: Stream.Stream<Response.StreamEvent, LLMError.LLMError> = llm.stream(request).pipe(
          Resilience.retry()
        )
        const directStream: Stream.Stream<Response.StreamEvent, LLMError.LLMError> = Resilience.retry(
          llm.stream(request),
          Resilience.retryPolicy({ maxRetries: 1 })
        )
        expect((yield* piped).content).toBe("ok")
        expect((yield* direct).content).toBe("ok")
        expect((yield* noOptions).content).toBe("ok")
        expect((yield* events(pipedStream))[0]).toEqual({ _tag: "TextDelta", text: "ok" })
        expect((yield* events(directStream))[0]).toEqual({ _tag: "TextDelta", text: "ok" })

        const wrapped = Resilience.withRetry(llm, { maxRetries: 1 })
        const wrappedLast = Resilience.withRetry({ maxRetries: 1 })(llm)
        expect((yield* wrapped.complete(request)).content).toBe("ok")
        expect((yield* wrappedLast.complete(request)).content).toBe("ok")
      }))
  })

  describe("withRetry and layerRetry", () => {
    it.effect("retry every call of the wrapped LLM and keep its usage and identity", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(unavailable(1)), MockLLM.text("one"), MockLLM.text("two")])
        const retrying = Resilience.withRetry(llm)
        expect((yield* withClock(retrying.complete(request))).content).toBe("one")
        expect((yield* withClock(events(retrying.stream(request))))[0]).toEqual({ _tag: "TextDelta", text: "two" })
        expect(retrying.providerId).toBe("mock")
        expect(retrying.providerType).toBe("mock")
        expect(retrying.capabilities("claude-sonnet-4-5")).toEqual(llm.capabilities("claude-sonnet-4-5"))
        expect(yield* retrying.usage).toMatchObject({ calls: 3, failures: 1 })
        yield* retrying.resetUsage
        expect((yield* llm.usage).calls).toBe(0)
      }))

    it.effect("replaces the LLM in context with a retrying one", () =>
      Effect.gen(function*() {
        const reply = yield* withClock(LLM.complete(request))
        expect(reply.content).toBe("finally")
        expect(yield* MockLLM.requests).toHaveLength(3)
        const usage = yield* LLM.usage
        expect(usage).toMatchObject({ calls: 3, failures: 2 })
      }).pipe(
        Effect.provide(
          Resilience.layerRetry({ maxRetries: 2 }).pipe(
            Layer.provideMerge(MockLLM.layer([
              MockLLM.fail(rateLimited("1 second")),
              MockLLM.fail(unavailable(2)),
              MockLLM.text("finally")
            ]))
          )
        )
      ))
  })

  describe("retry through the real OpenAI provider (FakeProviderServer)", () => {
    it.scoped("429 with retry-after: 3, then success: exactly 2 requests, the second 3 s after the first", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* openai(server, "openai")
        yield* server.enqueue(
          Reply.openaiError(429, { message: "Slow down", type: "requests", code: "rate_limit_exceeded" }, {
            "retry-after": "3"
          }),
          Reply.scripted({ text: "done" })
        )
        const fiber = yield* Effect.fork(Resilience.retry(llm.complete(request)))
        yield* awaitRequests(server, 1)
        yield* awaitSleepAt(3000)
        yield* TestClock.adjust("2999 millis")
        yield* realPauses(20)
        expect(yield* server.requests).toHaveLength(1)
        yield* TestClock.adjust("1 millis")
        const reply = yield* Fiber.join(fiber)
        expect(reply.content).toBe("done")
        expect(yield* server.requests).toHaveLength(2)
        expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 1 })
      }))

    it.scoped("insufficient_quota and 401 are not retried: exactly 1 request each", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* openai(server, "openai")
        const cases = [
          [
            Reply.openaiError(429, {
              message: "You exceeded your current quota",
              type: "insufficient_quota",
              code: "insufficient_quota"
            }),
            "QuotaExceededError"
          ],
          [
            Reply.openaiError(401, {
              message: "Incorrect API key provided",
              type: "invalid_request_error",
              code: "invalid_api_key"
            }),
            "AuthenticationError"
          ]
        ] as const
        for (const [reply, tag] of cases) {
          yield* server.reset
          yield* server.enqueue(reply, Reply.scripted({ text: "never" }))
          const error = yield* Effect.flip(Resilience.retry(llm.complete(request)))
          expect(error._tag).toBe(tag)
          expect(yield* server.requests).toHaveLength(1)
        }
      }))

    it.scoped("a stream that fails before its first event is retried", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* openai(server, "openai")
        yield* server.enqueue(
          Reply.openaiError(503, { message: "unavailable", type: "server_error" }),
          Reply.scripted({ text: ["Hel", "lo"] })
        )
        const fiber = yield* Effect.fork(
          Response.collect(Resilience.retry(llm.stream(request), { baseDelay: "1 second", jitter: false }))
        )
        yield* awaitRequests(server, 1)
        yield* awaitSleepAt(1000)
        yield* TestClock.adjust("1 second")
        const reply = yield* Fiber.join(fiber)
        expect(reply.content).toBe("Hello")
        expect(yield* server.requests).toHaveLength(2)
      }))

    it.scoped("a stream that fails after its first event is not retried; the typed error reaches the consumer", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = yield* openai(server, "openai")
        yield* server.enqueue(
          Reply.scripted({ text: ["one ", "two ", "three"] }, {
            errorAfterEvents: { count: 4, type: "server_error", message: "Overloaded" }
          }),
          Reply.scripted({ text: "never" })
        )
        const out = yield* events(Stream.either(Resilience.retry(llm.stream(request))))
        const last = out[out.length - 1]
        expect(out.length).toBeGreaterThan(1)
        expect(out.slice(0, -1).every(Either.isRight)).toBe(true)
        expect(last !== undefined && Either.isLeft(last) && last.left._tag).toBe("ProviderUnavailableError")
        expect(yield* server.requests).toHaveLength(1)
      }))
  })

  describe("withTimeout", () => {
    it.effect("complete: fails with TimeoutError at the total timeout, and interrupts the call", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.text("late"), { latency: "10 seconds" })
        const llm = Resilience.withTimeout(mock, "5 seconds")
        const fiber = yield* Effect.fork(Effect.flip(llm.complete(request)))
        yield* TestClock.adjust("4999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(fiber)
        expect(error).toBeInstanceOf(LLMError.TimeoutError)
        expect(error.provider).toBe("mock")
        expect(error._tag === "TimeoutError" && error.timeout).toEqual(Duration.seconds(5))
        expect(LLMError.isRetryable(error)).toBe(true)
        // The interrupted call ended: the provider counted it as a failed call.
        expect(yield* mock.usage).toMatchObject({ calls: 1, failures: 1 })
      }))

    it.effect("complete: a call within the timeout is unchanged", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.text("quick"), { latency: "1 second" })
        const llm = pipe(mock, Resilience.withTimeout({ total: "5 seconds" }))
        expect((yield* withClock(llm.complete(request))).content).toBe("quick")
        expect(llm.providerId).toBe("mock")
      }))

    it.effect("stream: the first event must come within firstEvent", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.text("late"), { latency: "10 seconds" })
        const llm = Resilience.withTimeout(mock, { firstEvent: "3 seconds", idle: "1 hour", total: "1 hour" })
        const fiber = yield* Effect.fork(Effect.flip(Stream.runDrain(llm.stream(request))))
        yield* TestClock.adjust("2999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("TimeoutError")
        expect(error.message).toContain("first-event")
        expect(error._tag === "TimeoutError" && error.timeout).toEqual(Duration.seconds(3))
        expect(yield* mock.usage).toMatchObject({ calls: 1, failures: 1 })
      }))

    it.effect("stream: a silence longer than idle after an event fails, after the events already seen", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.chunks(["a", "b"]))
        // "a" at once, then 10 s of silence before each later event.
        const slow = { ...mock, stream: (r: LLM.CompletionRequest) => gapsAfterFirst(mock.stream(r), "10 seconds") }
        const llm = Resilience.withTimeout(slow, { firstEvent: "1 second", idle: "5 seconds" })
        const fiber = yield* Effect.fork(events(Stream.either(llm.stream(request))))
        yield* TestClock.adjust("4999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const out = yield* Fiber.join(fiber)
        expect(out[0]).toEqual(Either.right({ _tag: "TextDelta", text: "a" }))
        expect(out).toHaveLength(2)
        const error = out[1]
        expect(error !== undefined && Either.isLeft(error) && error.left.message).toContain("idle")
      }))

    it.effect("stream: the whole stream must end within total, however lively", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.chunks(["a", "b", "c", "d"]))
        // An event every 2 s: idle never fires, total (5 s) does, after "a" and "b".
        const slow = { ...mock, stream: (r: LLM.CompletionRequest) => gapsAfterFirst(mock.stream(r), "2 seconds") }
        const llm = Resilience.withTimeout(slow, { total: "5 seconds", idle: "3 seconds" })
        const fiber = yield* Effect.fork(events(Stream.either(llm.stream(request))))
        yield* TestClock.adjust("4999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const out = yield* Fiber.join(fiber)
        expect(out.slice(0, -1)).toEqual([
          Either.right({ _tag: "TextDelta", text: "a" }),
          Either.right({ _tag: "TextDelta", text: "b" }),
          Either.right({ _tag: "TextDelta", text: "c" })
        ])
        const error = out[3]
        expect(error !== undefined && Either.isLeft(error) && error.left.message).toContain("total")
      }))

    it.effect("stream: a stream within its timeouts is unchanged", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(() => MockLLM.chunks(["a", "b"]))
        const slow = { ...mock, stream: (r: LLM.CompletionRequest) => gapsAfterFirst(mock.stream(r), "1 second") }
        const llm = Resilience.withTimeout(slow, { total: "1 minute", firstEvent: "1 second", idle: "2 seconds" })
        const reply = yield* withClock(Response.collect(llm.stream(request)))
        expect(reply.content).toBe("ab")
      }))

    it.scoped("a timeout aborts the provider's HTTP request (real OpenAI provider, TestClock)", () =>
      Effect.gen(function*() {
        const server = yield* FakeProviderServer.make()
        const llm = Resilience.withTimeout(yield* openai(server, "openai"), {
          total: "5 seconds",
          firstEvent: "2 seconds"
        })
        yield* server.enqueue(Reply.hang, Reply.sse([FakeProviderServer.SseItem.delay(60_000)]))

        const hung = yield* Effect.fork(Effect.flip(llm.complete(request)))
        yield* awaitRequests(server, 1)
        yield* awaitSleepAt(5000)
        yield* TestClock.adjust("5 seconds")
        expect((yield* Fiber.join(hung))._tag).toBe("TimeoutError")
        yield* server.awaitAborted(1).pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => "no abort" }))

        // Headers, then silence: the first-event timeout ends the stream and its request.
        const silent = yield* Effect.fork(Effect.flip(Stream.runDrain(llm.stream(request))))
        yield* awaitRequests(server, 2)
        const now = yield* TestClock.currentTimeMillis
        yield* awaitSleepAt(now + 2000)
        yield* TestClock.adjust("2 seconds")
        const error = yield* Fiber.join(silent)
        expect(error.message).toContain("first-event")
        yield* server.awaitAborted(2).pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => "no abort" }))
        expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 2 })
      }))
  })

  describe("withCircuitBreaker", () => {
    it.scoped(
      "opens, refuses without touching the network, half-opens after its reset time, closes on one success; " +
        "two racing fibers send one trial request",
      () =>
        Effect.gen(function*() {
          const server = yield* FakeProviderServer.make()
          const changes = yield* Ref.make<ReadonlyArray<string>>([])
          const llm = yield* Resilience.withCircuitBreaker(yield* openai(server, "openai"), {
            failureThreshold: 2,
            resetTimeout: "30 seconds",
            onStateChange: (change) => Ref.update(changes, (all) => [...all, `${change.from}->${change.to}`])
          })
          const unavailable = Reply.openaiError(503, { message: "unavailable", type: "server_error" })
          yield* server.enqueue(unavailable, unavailable)
          expect((yield* Effect.flip(llm.complete(request)))._tag).toBe("ProviderUnavailableError")
          expect((yield* Effect.flip(llm.complete(request)))._tag).toBe("ProviderUnavailableError")
          expect(yield* Ref.get(changes)).toEqual(["Closed->Open"])

          // Open: refused at once, network untouched.
          const refused = yield* Effect.flip(llm.complete(request))
          expect(refused._tag).toBe("CircuitOpenError")
          expect(LLMError.retryAfter(refused)).toEqual(Option.some(Duration.seconds(30)))
          expect((yield* Effect.flip(Stream.runDrain(llm.stream(request))))._tag).toBe("CircuitOpenError")
          yield* TestClock.adjust("29 seconds")
          const later = yield* Effect.flip(llm.complete(request))
          expect(LLMError.retryAfter(later)).toEqual(Option.some(Duration.seconds(1)))
          expect(yield* server.requests).toHaveLength(2)

          // Half-open: of two racing calls, one is the trial, the other is refused.
          yield* TestClock.adjust("1 second")
          yield* server.enqueue(Reply.delayed(50, Reply.scripted({ text: "trial" })))
          const results = yield* Effect.all([
            Effect.either(llm.complete(request)),
            Effect.either(llm.complete(request))
          ], {
            concurrency: 2
          })
          const answered = results.filter(Either.isRight)
          const refusedRace = results.filter(Either.isLeft)
          expect(answered.map((r) => r.right.content)).toEqual(["trial"])
          expect(refusedRace.map((r) => r.left._tag)).toEqual(["CircuitOpenError"])
          expect(yield* server.requests).toHaveLength(3)

          // Closed again.
          expect((yield* llm.complete(request)).content).toBe("Hello from FakeProviderServer")
          expect(yield* server.requests).toHaveLength(4)
          expect(yield* Ref.get(changes)).toEqual(["Closed->Open", "Open->HalfOpen", "HalfOpen->Closed"])
        })
    )

    it.effect("a failed trial opens it again for another reset time", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make([
          MockLLM.fail(unavailable(1)),
          MockLLM.fail(unavailable(2)),
          MockLLM.text("recovered")
        ])
        const llm = yield* Resilience.withCircuitBreaker(mock, { failureThreshold: 1, resetTimeout: "10 seconds" })
        yield* Effect.flip(llm.complete(request))
        yield* TestClock.adjust("10 seconds")
        expect((yield* Effect.flip(llm.complete(request))).message).toBe("overloaded #2")
        const refused = yield* Effect.flip(llm.complete(request))
        expect(LLMError.retryAfter(refused)).toEqual(Option.some(Duration.seconds(10)))
        yield* TestClock.adjust("10 seconds")
        expect((yield* llm.complete(request)).content).toBe("recovered")
        expect(yield* calls(mock)).toBe(3)
      }))

    it.effect("errors that are not retryable do not count, and a success resets the count", () =>
      Effect.gen(function*() {
        const auth = new LLMError.AuthenticationError({ provider: "mock", message: "bad key", status: 401 })
        const mock = yield* MockLLM.make([
          MockLLM.fail(auth),
          MockLLM.fail(auth),
          MockLLM.fail(auth),
          MockLLM.fail(unavailable(1)),
          MockLLM.text("ok"),
          MockLLM.fail(unavailable(2)),
          MockLLM.text("still closed")
        ])
        const llm = yield* Resilience.withCircuitBreaker(mock, { failureThreshold: 2 })
        for (let i = 0; i < 3; i++) expect((yield* Effect.flip(llm.complete(request)))._tag).toBe("AuthenticationError")
        yield* Effect.flip(llm.complete(request))
        yield* llm.complete(request)
        yield* Effect.flip(llm.complete(request))
        expect((yield* llm.complete(request)).content).toBe("still closed")
      }))

    it.effect("opens on a failure rate over a window", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make((_, i) => i % 2 === 0 ? MockLLM.fail(unavailable(i)) : MockLLM.text("ok"))
        const llm = yield* Resilience.withCircuitBreaker(mock, {
          failureRate: 0.5,
          minimumCalls: 4,
          window: "1 minute"
        })
        const attempt = Effect.either(llm.complete(request))
        // f, s, f: too few calls; a minute later they have left the window.
        yield* Effect.replicateEffect(attempt, 3)
        yield* TestClock.adjust("61 seconds")
        // s, f, s: 1 of 3 in the window; then f: 2 of 4 -> open.
        yield* Effect.replicateEffect(attempt, 3)
        expect(Either.isRight(yield* attempt)).toBe(false)
        expect(yield* calls(mock)).toBe(7)
        const refused = yield* attempt
        expect(Either.isLeft(refused) && refused.left._tag).toBe("CircuitOpenError")
        expect(yield* calls(mock)).toBe(7)
      }))

    it.effect("a stream counts as a success at its first event, as a failure before it", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make([
          MockLLM.chunks(["partial"], { failWith: unavailable(1) }),
          MockLLM.chunks([], { failWith: unavailable(2) }),
          MockLLM.text("never")
        ])
        const llm = yield* Resilience.withCircuitBreaker(mock, { failureThreshold: 1 })
        const broken = yield* events(Stream.either(llm.stream(request)))
        expect(broken[0]).toEqual(Either.right({ _tag: "TextDelta", text: "partial" }))
        // Still closed: the first stream had emitted before it failed.
        expect((yield* Effect.flip(Stream.runDrain(llm.stream(request)))).message).toBe("overloaded #2")
        expect((yield* Effect.flip(Stream.runDrain(llm.stream(request))))._tag).toBe("CircuitOpenError")
        expect(yield* calls(mock)).toBe(2)
      }))

    it.effect("an interrupted trial frees the half-open slot", () =>
      Effect.gen(function*() {
        const mock = yield* MockLLM.make(
          (_, i) => i === 0 ? MockLLM.fail(unavailable(1)) : MockLLM.text("ok"),
          { latency: "1 second" }
        )
        const llm = yield* Resilience.withCircuitBreaker(mock, { failureThreshold: 1, resetTimeout: "10 seconds" })
        yield* withClock(Effect.flip(llm.complete(request)), "1 second")
        yield* TestClock.adjust("10 seconds")
        const trial = yield* Effect.fork(llm.complete(request))
        yield* TestClock.adjust("10 millis")
        expect((yield* Effect.flip(llm.complete(request)))._tag).toBe("CircuitOpenError")
        yield* Fiber.interrupt(trial)
        expect((yield* withClock(llm.complete(request), "1 second")).content).toBe("ok")
        expect(yield* calls(mock)).toBe(3)
      }))
  })

  describe("withFallback", () => {
    it.scoped(
      "three providers: the first rate limited, the second unreachable, the third answers; usage is recorded " +
        "where calls really went",
      () =>
        Effect.gen(function*() {
          const limited = yield* FakeProviderServer.make()
          const healthy = yield* FakeProviderServer.make()
          const first = yield* openai(limited, "first")
          const second = yield* OpenAI.make({
            apiKey: Redacted.make("sk-test"),
            baseUrl: "http://127.0.0.1:9/v1",
            providerId: "second"
          })
          const third = yield* openai(healthy, "third")
          yield* limited.enqueue(
            Reply.openaiError(429, { message: "Slow down", type: "requests", code: "rate_limit_exceeded" })
          )
          yield* healthy.enqueue(Reply.scripted({ text: "from the third" }))
          const llm = Resilience.withFallback(first, [second, third])
          expect(llm.providerId).toBe("fallback(first,second,third)")
          const reply = yield* llm.complete(request)
          expect(reply.content).toBe("from the third")
          expect(reply.providerId).toBe("third")
          expect(yield* first.usage).toMatchObject({ calls: 1, failures: 1 })
          expect(yield* second.usage).toMatchObject({ calls: 1, failures: 1 })
          expect(yield* third.usage).toMatchObject({ calls: 1, failures: 0, inputTokens: 10, outputTokens: 5 })
          expect(yield* llm.usage).toMatchObject({ calls: 3, failures: 2, inputTokens: 10, outputTokens: 5 })

          // The same for a stream; the Finish says who answered.
          yield* limited.enqueue(
            Reply.openaiError(429, { message: "Slow down", type: "requests", code: "rate_limit_exceeded" })
          )
          yield* healthy.enqueue(Reply.scripted({ text: ["streamed ", "by the third"] }))
          const out = yield* events(llm.stream(request))
          const finish = out[out.length - 1]
          expect(finish?._tag === "Finish" && finish.providerId).toBe("third")
          expect(yield* llm.usage).toMatchObject({ calls: 6, failures: 4 })
          expect(yield* limited.requests).toHaveLength(2)
          expect(yield* healthy.requests).toHaveLength(2)
        })
    )

    it.effect("a stream falls back only while it has emitted nothing", () =>
      Effect.gen(function*() {
        const a = yield* MockLLM.make([
          MockLLM.chunks([], { failWith: unavailable(1) }),
          MockLLM.chunks(["partial"], { failWith: unavailable(2) })
        ], { providerId: "a" })
        const b = yield* MockLLM.make(() => MockLLM.text("from b"), { providerId: "b" })
        const llm = pipe(a, Resilience.withFallback([b]))
        const fromB = yield* events(llm.stream(request))
        expect(fromB.map((event) => event._tag)).toEqual(["TextDelta", "Finish"])
        expect(fromB[1]).toMatchObject({ _tag: "Finish", providerId: "b" })
        const out = yield* events(Stream.either(llm.stream(request)))
        expect(out).toEqual([Either.right({ _tag: "TextDelta", text: "partial" }), Either.left(unavailable(2))])
        expect(yield* calls(b)).toBe(1)
      }))

    it.effect("stops at an error that is not retryable, unless `when` says otherwise", () =>
      Effect.gen(function*() {
        const auth = new LLMError.AuthenticationError({ provider: "a", message: "bad key", status: 401 })
        const a = yield* MockLLM.make(() => MockLLM.fail(auth), { providerId: "a" })
        const b = yield* MockLLM.make(() => MockLLM.text("from b"), { providerId: "b" })
        expect(yield* Effect.flip(Resilience.withFallback(a, [b]).complete(request))).toBe(auth)
        expect(yield* calls(b)).toBe(0)
        const always = Resilience.fallbackChain([a, b], { when: () => true, providerId: "chain" })
        expect(always.providerId).toBe("chain")
        expect((yield* always.complete(request)).content).toBe("from b")
      }))

    it.effect("the last provider's error is the chain's", () =>
      Effect.gen(function*() {
        const a = yield* MockLLM.make(() => MockLLM.fail(unavailable(1)), { providerId: "a" })
        const b = yield* MockLLM.make(() => MockLLM.fail(unavailable(2)), { providerId: "b" })
        expect((yield* Effect.flip(Resilience.withFallback(a, [b]).complete(request))).message).toBe("overloaded #2")
      }))

    it.effect("fallbacks answer with their own default model unless sameModel is set", () =>
      Effect.gen(function*() {
        const a = yield* MockLLM.make(() => MockLLM.fail(unavailable(1)), { providerId: "a" })
        const b = yield* MockLLM.make(() => MockLLM.text("from b"), { providerId: "b", defaultModel: "b-model" })
        const asked = { ...request, model: "a-model" }
        expect((yield* Resilience.withFallback(a, [b]).complete(asked)).model).toBe("b-model")
        expect((yield* Resilience.withFallback(a, [b], { sameModel: true }).complete(asked)).model).toBe("a-model")
        const [first, second] = yield* b.requests
        expect(first?.model).toBeUndefined()
        expect(second?.model).toBe("a-model")
        expect((yield* a.requests).every((r) => r.model === "a-model")).toBe(true)
      }))

    it.effect("resetUsage resets every provider of the chain", () =>
      Effect.gen(function*() {
        const a = yield* MockLLM.make(() => MockLLM.fail(unavailable(1)), { providerId: "a" })
        const b = yield* MockLLM.make(() => MockLLM.text("from b"), { providerId: "b" })
        const llm = Resilience.withFallback(a, [b])
        yield* llm.complete(request)
        expect(yield* llm.usage).toMatchObject({ calls: 2, failures: 1 })
        yield* llm.resetUsage
        expect(yield* llm.usage).toMatchObject({ calls: 0, failures: 0 })
      }))
  })

  describe("layer", () => {
    it.effect("fallback(retry(breaker(timeout(llm)))): retries count towards the breaker; an open breaker falls over at once", () =>
      Effect.gen(function*() {
        const primary = yield* MockLLM.make(() => MockLLM.fail(unavailable(0)), { providerId: "primary" })
        const backup = yield* MockLLM.make(() => MockLLM.text("from backup"), { providerId: "backup" })
        const llm = yield* Resilience.wrap(primary, {
          timeout: "10 seconds",
          circuitBreaker: { failureThreshold: 2, resetTimeout: "1 minute" },
          retry: { maxRetries: 5 },
          fallbacks: [backup]
        })
        // Two attempts open the breaker; the third is refused and the call moves on to the backup.
        const reply = yield* withClock(llm.complete(request), "5 seconds")
        expect(reply.providerId).toBe("backup")
        expect(yield* calls(primary)).toBe(2)
        // Open: straight to the backup, the primary untouched.
        expect((yield* llm.complete(request)).providerId).toBe("backup")
        expect(yield* calls(primary)).toBe(2)
      }))

    it.effect("the timeout bounds each attempt, inside the retry", () =>
      Effect.gen(function*() {
        // Each attempt times out at 5 s; one retry after 1 s: the call fails at 5 + 1 + 5 = 11 s.
        const fiber = yield* Effect.fork(Effect.flip(LLM.complete(request)))
        yield* TestClock.adjust("10999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect((yield* Fiber.join(fiber))._tag).toBe("TimeoutError")
        expect(yield* MockLLM.requests).toHaveLength(2)
      }).pipe(
        Effect.provide(
          Resilience.layer({ timeout: "5 seconds", retry: { maxRetries: 1, baseDelay: "1 second", jitter: false } })
            .pipe(Layer.provideMerge(MockLLM.layer(() => MockLLM.text("too late"), { latency: "6 seconds" })))
        )
      ))
  })
})
