import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Budget from "../src/Budget.js"
import * as LLM from "../src/LLM.js"
import * as Message from "../src/Message.js"
import * as ProviderRegistry from "../src/ProviderRegistry.js"
import * as Resilience from "../src/Resilience.js"
import * as MockLLM from "../src/testing/MockLLM.js"

describe("LLM.isLLM", () => {
  it.effect("holds for a provider's service and for what the combinators return", () =>
    Effect.gen(function*() {
      const llm = yield* MockLLM.make(["a", "b", "c", "d", "e", "f"].map((t) => MockLLM.text(t)))
      expect(LLM.isLLM(llm)).toBe(true)
      const budget = yield* Budget.make({ total: { usd: 10 }, unpriced: "allow" }) // the mock model has no price
      const wrappedAll = [
        Resilience.withRetry(llm),
        Resilience.withRetry()(llm),
        Budget.guard(llm, budget),
        ProviderRegistry.withDefaults(llm, { maxTokens: 5 }),
        Resilience.withFallback(llm, [llm], { providerId: "chain" }),
        yield* Resilience.withCircuitBreaker(llm)
      ]
      for (const wrapped of wrappedAll) {
        expect(LLM.isLLM(wrapped)).toBe(true)
        expect((yield* wrapped.complete({ messages: [Message.user("hi")] })).content).toMatch(/^[a-f]$/)
      }
    }))

  it("does not hold for look-alikes: effects, streams, options, or objects whose members are not functions", () => {
    const lookAlikes: ReadonlyArray<unknown> = [
      undefined,
      null,
      "llm",
      Effect.void,
      Stream.empty,
      { complete: 1, stream: 2, usage: 3 },
      { providerId: "p", complete: () => Effect.void, stream: () => Stream.empty, usage: 3 },
      { complete: () => Effect.void, stream: () => Stream.empty, usage: Effect.void },
      { maxRetries: 2 }
    ]
    for (const u of lookAlikes) expect(LLM.isLLM(u)).toBe(false)
  })
})
