import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as LLM from "../src/LLM.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as Resilience from "../src/Resilience.js"
import type * as Response from "../src/Response.js"
import * as MockLLM from "../src/testing/MockLLM.js"

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

const calls = (llm: MockLLM.Service) => Effect.map(llm.requests, (requests) => requests.length)

const events = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/** Runs an effect in a fiber while the test clock moves far ahead. */
const withClock = <A, E, R>(effect: Effect.Effect<A, E, R>, ahead: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(ahead)
    return yield* Fiber.join(fiber)
  })

describe("Resilience", () => {
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

        const wrapped = Resilience.retryLLM(llm, { maxRetries: 1 })
        const wrappedLast = Resilience.retryLLM({ maxRetries: 1 })(llm)
        expect((yield* wrapped.complete(request)).content).toBe("ok")
        expect((yield* wrappedLast.complete(request)).content).toBe("ok")
      }))
  })

  describe("retryLLM and layerRetry", () => {
    it.effect("retry every call of the wrapped LLM and keep its usage and identity", () =>
      Effect.gen(function*() {
        const llm = yield* MockLLM.make([MockLLM.fail(unavailable(1)), MockLLM.text("one"), MockLLM.text("two")])
        const retrying = Resilience.retryLLM(llm)
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
})
