import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as LLMError from "../src/LLMError.js"
import * as Message from "../src/Message.js"
import * as Resilience from "../src/Resilience.js"
import * as MockLLM from "../src/testing/MockLLM.js"

const request = { messages: [Message.user("Hi")] }

const unavailable = new LLMError.ProviderUnavailableError({ provider: "mock", message: "overloaded", status: 529 })

describe("CircuitBreaker", () => {
  it.effect("make: one breaker guards effects and streams alike, its state shared by all of them (TestClock)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        provider: "shared",
        failureThreshold: 2,
        resetTimeout: "10 seconds"
      })
      expect(yield* breaker.state).toBe("Closed")
      expect((yield* Effect.flip(breaker.protect(Effect.fail(unavailable))))._tag).toBe("ProviderUnavailableError")
      expect((yield* Effect.flip(Stream.runDrain(breaker.protectStream(Stream.fail(unavailable)))))._tag)
        .toBe("ProviderUnavailableError")
      expect(yield* breaker.state).toBe("Open")

      // Open: refused without running the guarded effect
      let ran = false
      const refused = yield* Effect.flip(breaker.protect(Effect.sync(() => {
        ran = true
      })))
      expect(ran).toBe(false)
      expect(refused).toMatchObject({ _tag: "CircuitOpenError", provider: "shared" })
      expect(LLMError.retryAfter(refused)).toEqual(Option.some(Duration.seconds(10)))

      // After resetTimeout one trial goes through; its success closes the breaker
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.protect(Effect.succeed("trial"))).toBe("trial")
      expect(yield* breaker.state).toBe("Closed")
    }))

  it.effect("protectLLM puts an LLM behind a breaker, data-first and data-last; usage stays the provider's", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make([MockLLM.fail(unavailable), MockLLM.text("never")], { providerId: "mock" })
      const breaker = yield* CircuitBreaker.make({ provider: "mock", failureThreshold: 1 })
      const guarded = CircuitBreaker.protectLLM(llm, breaker)
      const piped = CircuitBreaker.protectLLM(breaker)(llm)
      expect((yield* Effect.flip(guarded.complete(request)))._tag).toBe("ProviderUnavailableError")
      expect((yield* Effect.flip(piped.complete(request)))._tag).toBe("CircuitOpenError")
      expect(guarded.providerId).toBe("mock")
      expect(yield* guarded.usage).toMatchObject({ calls: 1, failures: 1 })
    }))

  it("Resilience keeps the old names as deprecated aliases", () => {
    expect(Resilience.makeCircuitBreaker).toBe(CircuitBreaker.make)

    expect(Resilience.retryLLM).toBe(Resilience.withRetry)
  })
})
