/**
 * Counting and forecasts before the call: `Tokens.count`, `Tokens.forecast`, `LLM.Service.countTokens`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Message from "../src/Message.js"
import * as MockLLM from "../src/testing/MockLLM.js"
import * as Tokens from "../src/Tokens.js"

describe("Tokens (interface)", () => {
  it.effect("count and forecast reach the LLM in context, sending nothing", () =>
    Effect.gen(function*() {
      const request = { messages: [Message.user("Hello there")], maxTokens: 100 }
      const counted = yield* Tokens.count(request)
      expect(counted.method).toBe("estimate")
      expect(counted.inputTokens).toBeGreaterThan(0)
      const forecast = yield* Tokens.forecast(request)
      expect(forecast).toEqual({
        model: "mock-model",
        inputTokens: counted.inputTokens,
        maxOutputTokens: 100,
        maxUsd: undefined,
        method: "estimate"
      })
      const priced = yield* Tokens.forecast({ ...request, model: "gpt-4o" })
      expect(priced.maxUsd).toBeGreaterThan(0)
      expect(yield* MockLLM.requests).toHaveLength(0)
    }).pipe(Effect.provide(MockLLM.layer([]))))
})
