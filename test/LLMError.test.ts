import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as LLMError from "../src/LLMError.js"

describe("LLMError", () => {
  const samples: ReadonlyArray<LLMError.LLMError> = [
    new LLMError.RateLimitError({
      provider: "p",
      message: "slow down",
      status: 429,
      requestId: "req_1",
      retryAfter: Option.some(Duration.seconds(3)),
      rateLimits: { "x-ratelimit-remaining-requests": "0" }
    }),
    new LLMError.RateLimitError({ provider: "p", message: "slow down", retryAfter: Option.none() }),
    new LLMError.TimeoutError({ provider: "p", message: "late", timeout: Duration.millis(1500) }),
    new LLMError.CircuitOpenError({ provider: "p", message: "open", retryAfter: Duration.seconds(30) }),
    new LLMError.BudgetExceededError({ provider: "p", message: "over", limit: 1, spent: 1.2 }),
    new LLMError.ConnectionError({ provider: "p", message: "reset" }),
    new LLMError.SharedStateUnavailableError({
      provider: "shared-state",
      message: "redis did not answer within 250 ms",
      operation: "limiter.admit"
    })
  ]

  it("every error survives JSON across a boundary and keeps its tag and retryability", () => {
    const encode = Schema.encodeSync(LLMError.LLMError)
    const decode = Schema.decodeUnknownSync(LLMError.LLMError)
    for (const error of samples) {
      const back = decode(JSON.parse(JSON.stringify(encode(error))))
      expect(back._tag).toBe(error._tag)
      expect(back.message).toBe(error.message)
      expect(back.isRetryable).toBe(error.isRetryable)
      expect(LLMError.retryAfter(back)).toEqual(LLMError.retryAfter(error))
      expect(back).toEqual(error)
    }
  })

  it("isRetryable follows the table", () => {
    const retryable = samples.filter(LLMError.isRetryable).map((e) => e._tag)
    expect(retryable).toEqual([
      "RateLimitError",
      "RateLimitError",
      "TimeoutError",
      "CircuitOpenError",
      "ConnectionError",
      "SharedStateUnavailableError"
    ])
    expect(LLMError.isLLMError(samples[0])).toBe(true)
    expect(LLMError.isLLMError(new Error("x"))).toBe(false)
  })

  it("a user's own error with one of our tags is not an LLMError", () => {
    class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {}) {
      get isRetryable(): boolean {
        return true
      }
    }
    const theirs = new TimeoutError()
    expect(LLMError.isLLMError(theirs)).toBe(false)
    expect(LLMError.isLLMError({ _tag: "RateLimitError", provider: "p", message: "m" })).toBe(false)
    expect(LLMError.isRetryable(theirs)).toBe(false)
    expect(LLMError.isRetryable("RateLimitError")).toBe(false)
    expect(LLMError.isRetryable(undefined)).toBe(false)
    for (const error of samples) expect(LLMError.isLLMError(error)).toBe(true)
  })

  it("errors carry the TypeId brand and a schema identifier of their own", () => {
    for (const error of samples) {
      expect(LLMError.TypeId in error).toBe(true)
      const back = Schema.decodeUnknownSync(LLMError.LLMError)(Schema.encodeSync(LLMError.LLMError)(error))
      expect(LLMError.isLLMError(back)).toBe(true)
    }
    expect(LLMError.TypeId).toBe(Symbol.for("@orchestify/providers/LLMError"))
    const identifiers = LLMError.LLMError.members.map((member) => member.identifier)
    expect(identifiers).toContain("@orchestify/providers/LLMError/RateLimitError")
    expect(identifiers).toContain("@orchestify/providers/LLMError/SharedStateUnavailableError")
    for (const id of identifiers) expect(id).toMatch(/^@orchestify\/providers\/LLMError\/[A-Za-z]+Error$/)
  })
})

describe("LLMError: the provider's retry verdict and wait (issue 12, defect 10)", () => {
  it("retryable: false and a ProviderUnavailableError's retryAfter survive JSON and are read", () => {
    const encode = Schema.encodeSync(LLMError.LLMError)
    const decode = Schema.decodeUnknownSync(LLMError.LLMError)
    const samples: ReadonlyArray<readonly [LLMError.LLMError, boolean, Option.Option<Duration.Duration>]> = [
      [
        new LLMError.ProviderUnavailableError({ provider: "p", message: "m", retryAfter: Duration.seconds(7) }),
        true,
        Option.some(Duration.seconds(7))
      ],
      [new LLMError.ProviderUnavailableError({ provider: "p", message: "m", retryable: false }), false, Option.none()],
      [
        new LLMError.RateLimitError({ provider: "p", message: "m", retryAfter: Option.none(), retryable: false }),
        false,
        Option.none()
      ],
      [new LLMError.TimeoutError({ provider: "p", message: "m", retryable: false }), false, Option.none()]
    ]
    for (const [error, retryable, wait] of samples) {
      const back = decode(JSON.parse(JSON.stringify(encode(error))))
      expect(back).toEqual(error)
      expect(LLMError.isRetryable(back)).toBe(retryable)
      expect(LLMError.retryAfter(back)).toEqual(wait)
    }
  })
})
