import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Pricing from "../src/Pricing.js"
import * as Usage from "../src/Usage.js"

const inputOf = (model: string, overrides?: Pricing.PriceTable): number | undefined =>
  Option.getOrUndefined(Option.map(Pricing.lookup(model, overrides), (price) => price.input))

describe("Pricing", () => {
  it("records the date of the built-in prices", () => {
    expect(Pricing.asOf).toBe("2026-11-27")
  })

  describe("defaults", () => {
    // Every row of PRICING-FACTS.md: input, output, cache read, cache write 5 min, cache write 1 h
    const facts: ReadonlyArray<readonly [string, number, number, number?, number?, number?]> = [
      ["claude-sonnet-5", 2, 10, 0.2, 2.5, 4],
      ["claude-sonnet-4-6", 3, 15, 0.3, 3.75, 6],
      ["claude-sonnet-4-5", 3, 15, 0.3, 3.75, 6],
      ["claude-opus-4-5", 5, 25, 0.5, 6.25, 10],
      ["claude-opus-4-6", 5, 25, 0.5, 6.25, 10],
      ["claude-opus-4-7", 5, 25, 0.5, 6.25, 10],
      ["claude-opus-4-8", 5, 25, 0.5, 6.25, 10],
      ["claude-opus-4-1", 15, 75, 1.5, 18.75, 30],
      ["claude-haiku-4-5", 1, 5, 0.1, 1.25, 2],
      ["claude-3-opus", 15, 75, 1.5, 18.75, 30],
      ["claude-3-5-sonnet", 3, 15, 0.3, 3.75],
      ["claude-3-5-haiku", 0.8, 4, 0.08, 1],
      ["gpt-5", 1.25, 10, 0.125],
      ["gpt-5-mini", 0.25, 2, 0.025],
      ["gpt-4.1", 2, 8, 0.5],
      ["gpt-4.1-mini", 0.4, 1.6, 0.1],
      ["gpt-4o", 2.5, 10, 1.25],
      ["gpt-4o-mini", 0.15, 0.6, 0.075],
      ["o3", 2, 8, 0.5],
      ["o4-mini", 1.1, 4.4, 0.275],
      ["gpt-4-turbo", 10, 30],
      ["gpt-4", 30, 60],
      ["gpt-3.5-turbo", 0.5, 1.5]
    ]

    it.each(facts.map(([model, input, output, cacheRead, cacheWrite, cacheWrite1h]) => ({
      model,
      input,
      output,
      cacheRead,
      cacheWrite,
      cacheWrite1h
    })))("$model has its list price", ({ cacheRead, cacheWrite, cacheWrite1h, input, model, output }) => {
      const price = Pricing.defaults[model]
      expect(price).toBeDefined()
      expect(price?.input).toBe(input)
      expect(price?.output).toBe(output)
      expect(price?.cacheRead).toBe(cacheRead)
      expect(price?.cacheWrite).toBe(cacheWrite)
      expect(price?.cacheWrite1h).toBe(cacheWrite1h)
    })

    it("has no key that is not in the facts", () => {
      expect(Object.keys(Pricing.defaults).sort()).toEqual(facts.map(([model]) => model).sort())
    })

    it("gives claude-sonnet-4-5 a long-context tier above 200k prompt tokens", () => {
      expect(Pricing.defaults["claude-sonnet-4-5"]?.longContext).toEqual({
        threshold: 200_000,
        input: 6,
        output: 22.5,
        cacheRead: 0.6,
        cacheWrite: 7.5
      })
    })
  })

  describe("cost", () => {
    it("prices cache reads and writes once each (claude-sonnet-4-5)", () => {
      const usage = Usage.tokens({ inputTokens: 1000, cacheReadTokens: 200, cacheWriteTokens: 100, outputTokens: 500 })
      const expected = (700 * 3 + 200 * 0.3 + 100 * 3.75 + 500 * 15) / 1e6
      expect(Pricing.cost("claude-sonnet-4-5", usage)).toBeCloseTo(expected, 15)
      expect(Pricing.cost("claude-sonnet-4-5", usage)).toBeCloseTo(0.010035, 15)
    })

    it("prices OpenAI cached prompt tokens at the cache-read price (gpt-4o)", () => {
      const usage = Usage.tokens({ inputTokens: 2000, cacheReadTokens: 1000, outputTokens: 300, reasoningTokens: 0 })
      const expected = (1000 * 2.5 + 1000 * 1.25 + 300 * 10) / 1e6
      expect(Pricing.cost("gpt-4o", usage)).toBeCloseTo(expected, 15)
    })

    it("counts reasoning tokens as the output they are part of (o3)", () => {
      const usage = Usage.tokens({ inputTokens: 100, outputTokens: 1000, reasoningTokens: 800 })
      expect(Pricing.cost("o3", usage)).toBeCloseTo((100 * 2 + 1000 * 8) / 1e6, 15)
    })

    it("charges cache tokens at the input price when the model has no cache price (gpt-4)", () => {
      const usage = Usage.tokens({ inputTokens: 1000, cacheReadTokens: 400, cacheWriteTokens: 100, outputTokens: 10 })
      expect(Pricing.cost("gpt-4", usage)).toBeCloseTo((1000 * 30 + 10 * 60) / 1e6, 15)
    })

    it("charges the whole call at long-context prices above the threshold", () => {
      const usage = Usage.tokens({
        inputTokens: 250_000,
        cacheReadTokens: 50_000,
        cacheWriteTokens: 10_000,
        outputTokens: 1000
      })
      const expected = (190_000 * 6 + 50_000 * 0.6 + 10_000 * 7.5 + 1000 * 22.5) / 1e6
      expect(Pricing.cost("claude-sonnet-4-5-20250929", usage)).toBeCloseTo(expected, 12)
    })

    it("keeps the base prices at exactly the threshold", () => {
      const usage = Usage.tokens({ inputTokens: 200_000, outputTokens: 1000 })
      expect(Pricing.cost("claude-sonnet-4-5", usage)).toBeCloseTo((200_000 * 3 + 1000 * 15) / 1e6, 12)
    })

    it("has no long-context tier on models without one", () => {
      const usage = Usage.tokens({ inputTokens: 500_000, outputTokens: 1000 })
      expect(Pricing.cost("claude-sonnet-4-6", usage)).toBeCloseTo((500_000 * 3 + 1000 * 15) / 1e6, 12)
    })

    it("falls back to the long-context input price for missing long-context cache prices", () => {
      const price: Pricing.ModelPrice = {
        input: 1,
        output: 2,
        cacheRead: 0.1,
        longContext: { threshold: 100, input: 10, output: 20 }
      }
      const usage = Usage.tokens({ inputTokens: 200, cacheReadTokens: 50, cacheWriteTokens: 50, outputTokens: 10 })
      expect(Pricing.costWith(price, usage)).toBeCloseTo((200 * 10 + 10 * 20) / 1e6, 15)
    })

    it("is never negative when cache counts exceed the prompt", () => {
      const usage = Usage.tokens({ inputTokens: 100, cacheReadTokens: 300, outputTokens: 0 })
      const usd = Pricing.cost("claude-haiku-4-5", usage)
      expect(usd).toBeCloseTo((300 * 0.1) / 1e6, 15)
      expect(usd).toBeGreaterThanOrEqual(0)
      expect(Pricing.cost("gpt-4o", Usage.tokens({ inputTokens: -5, outputTokens: -5 }))).toBe(0)
    })

    it("is zero for no tokens on a priced model", () => {
      expect(Pricing.cost("gpt-4o", Usage.emptyTokens)).toBe(0)
    })

    it("is undefined for an unknown model, never zero", () => {
      expect(Pricing.cost("llama-3-70b", Usage.tokens({ inputTokens: 10, outputTokens: 10 }))).toBeUndefined()
      expect(Option.isNone(Pricing.lookup("llama-3-70b"))).toBe(true)
      expect(Option.isNone(Pricing.lookup(""))).toBe(true)
    })

    it("does not take prices from the object prototype", () => {
      expect(Option.isNone(Pricing.lookup("constructor"))).toBe(true)
      expect(Option.isNone(Pricing.lookup("toString"))).toBe(true)
      expect(Pricing.cost("__proto__", Usage.tokens({ inputTokens: 1 }), {})).toBeUndefined()
    })
  })

  describe("lookup", () => {
    it("prices a date-suffixed name as its longest matching key", () => {
      expect(Pricing.lookup("claude-sonnet-4-5-20250929")).toEqual(Option.some(Pricing.defaults["claude-sonnet-4-5"]))
      expect(inputOf("claude-opus-4-1-20250805")).toBe(15)
      expect(inputOf("claude-opus-4-5-20251101")).toBe(5)
      expect(inputOf("claude-haiku-4-5-20251001")).toBe(1)
      expect(inputOf("claude-3-5-haiku-20241022")).toBe(0.8)
      expect(inputOf("claude-3-opus-latest")).toBe(15)
      expect(inputOf("gpt-4o-2024-08-06")).toBe(2.5)
      expect(inputOf("gpt-4o-mini-2024-07-18")).toBe(0.15)
      expect(inputOf("gpt-4.1-2025-04-14")).toBe(2)
      expect(inputOf("gpt-4.1-mini-2025-04-14")).toBe(0.4)
      expect(inputOf("gpt-5-2025-08-07")).toBe(1.25)
      expect(inputOf("gpt-5-mini-2025-08-07")).toBe(0.25)
      expect(inputOf("o3-2025-04-16")).toBe(2)
      expect(inputOf("o4-mini-2025-04-16")).toBe(1.1)
      expect(inputOf("gpt-4-0613")).toBe(30)
      expect(inputOf("gpt-4-turbo-2024-04-09")).toBe(10)
      expect(inputOf("gpt-3.5-turbo-0125")).toBe(0.5)
    })

    it("accepts `@` and `:` suffixes (Vertex, gateways)", () => {
      expect(inputOf("claude-sonnet-4-5@20250929")).toBe(3)
      expect(inputOf("gpt-4o:free")).toBe(2.5)
    })

    it("matches a key only on a boundary", () => {
      expect(inputOf("gpt-4.1")).toBe(2)
      expect(inputOf("gpt-4.1")).not.toBe(inputOf("gpt-4"))
      expect(inputOf("gpt-4o")).toBe(2.5)
      expect(inputOf("gpt-4o-mini")).toBe(0.15)
      expect(inputOf("gpt-5-mini")).toBe(0.25)
      expect(inputOf("claude-sonnet-4-6")).toBe(3)
      expect(inputOf("claude-opus-4-6-20260101")).toBe(5)
      expect(inputOf("gpt-40")).toBeUndefined()
      expect(inputOf("gpt-4.5-preview")).toBeUndefined()
      expect(inputOf("o30")).toBeUndefined()
      expect(inputOf("gpt-5.1")).toBeUndefined()
    })

    it("does not price a variant (mini, nano, pro, ...) as its base model", () => {
      expect(inputOf("o3-mini")).toBeUndefined()
      expect(inputOf("o3-mini-2025-01-31")).toBeUndefined()
      expect(inputOf("o3-pro")).toBeUndefined()
      expect(inputOf("o3-deep-research")).toBeUndefined()
      expect(inputOf("gpt-5-nano")).toBeUndefined()
      expect(inputOf("gpt-4.1-nano")).toBeUndefined()
      expect(inputOf("gpt-4o-realtime-preview")).toBeUndefined()
      expect(inputOf("gpt-4o-mini-tts")).toBeUndefined()
    })

    it("strips a provider prefix", () => {
      expect(inputOf("openai/gpt-4o")).toBe(2.5)
      expect(inputOf("azure/gpt-4o-mini-2024-07-18")).toBe(0.15)
      expect(inputOf("anthropic/claude-sonnet-4-5-20250929")).toBe(3)
      expect(inputOf("openrouter/openai/gpt-4.1")).toBe(2)
      expect(inputOf("ollama/llama3")).toBeUndefined()
    })

    it("lets overrides win over the defaults, with the same matching", () => {
      const overrides: Pricing.PriceTable = { "gpt-4o": { input: 1, output: 2 } }
      expect(inputOf("gpt-4o", overrides)).toBe(1)
      expect(inputOf("gpt-4o-2024-08-06", overrides)).toBe(1)
      expect(inputOf("openai/gpt-4o", overrides)).toBe(1)
      expect(inputOf("gpt-4o-mini", overrides)).toBe(0.15)
      expect(inputOf("claude-haiku-4-5", overrides)).toBe(1)
      expect(Pricing.cost("gpt-4o", Usage.tokens({ inputTokens: 1000, outputTokens: 1000 }), overrides)).toBeCloseTo(
        (1000 * 1 + 1000 * 2) / 1e6,
        15
      )
    })

    it("prefers a shorter override to a longer default", () => {
      const overrides: Pricing.PriceTable = { "gpt-4o": { input: 1, output: 2 } }
      // The default `gpt-4o-mini` is longer, but overrides are looked up first.
      expect(inputOf("gpt-4o-2024-11-20", overrides)).toBe(1)
    })

    it("prices models the defaults do not know from overrides", () => {
      const overrides: Pricing.PriceTable = { "my-finetune": { input: 0.5, output: 1 } }
      expect(inputOf("my-finetune", overrides)).toBe(0.5)
      expect(inputOf("my-finetune-v2", overrides)).toBe(0.5)
      expect(inputOf("my-finetuned", overrides)).toBeUndefined()
    })

    it("uses an override for the full prefixed name before the bare one", () => {
      const overrides: Pricing.PriceTable = {
        "azure/gpt-4o": { input: 2, output: 8 },
        "gpt-4o": { input: 1, output: 2 }
      }
      expect(inputOf("azure/gpt-4o", overrides)).toBe(2)
      expect(inputOf("azure/gpt-4o-2024-08-06", overrides)).toBe(2)
      expect(inputOf("openai/gpt-4o", overrides)).toBe(1)
      expect(inputOf("gpt-4o", overrides)).toBe(1)
    })

    it("prices a free local model at zero when the config says so", () => {
      const overrides: Pricing.PriceTable = { "ollama/llama3": { input: 0, output: 0 } }
      expect(Pricing.cost("ollama/llama3", Usage.tokens({ inputTokens: 1000, outputTokens: 1000 }), overrides)).toBe(0)
    })
  })

  describe("schemas", () => {
    it("decodes a snake_case override", () => {
      const price: Pricing.ModelPrice = Schema.decodeUnknownSync(Pricing.ModelPriceSchema)({
        input: 3,
        output: 15,
        cache_read: 0.3,
        cache_write: 3.75,
        cache_write_1h: 6,
        long_context: { threshold: 200_000, input: 6, output: 22.5, cache_read: 0.6, cache_write: 7.5 }
      })
      expect(price).toEqual(Pricing.defaults["claude-sonnet-4-5"])
    })

    it("leaves out missing optional prices", () => {
      const price = Schema.decodeUnknownSync(Pricing.ModelPriceSchema)({ input: 0.5, output: 1.5 })
      expect(price).toStrictEqual({ input: 0.5, output: 1.5 })
      expect("cacheRead" in price).toBe(false)
    })

    it("decodes a table that works as overrides", () => {
      const overrides: Pricing.PriceTable = Schema.decodeUnknownSync(Pricing.PriceTableSchema)({
        "gpt-4o": { input: 2, output: 8, cache_read: 0.5 },
        "azure/gpt-4": { input: 25, output: 50 }
      })
      const usage = Usage.tokens({ inputTokens: 1000, cacheReadTokens: 1000, outputTokens: 100 })
      expect(Pricing.cost("gpt-4o-2024-08-06", usage, overrides)).toBeCloseTo((1000 * 0.5 + 100 * 8) / 1e6, 15)
      expect(Pricing.cost("azure/gpt-4", usage, overrides)).toBeCloseTo((1000 * 25 + 100 * 50) / 1e6, 15)
    })

    it("encodes back to snake_case", () => {
      expect(Schema.encodeSync(Pricing.ModelPriceSchema)({ input: 1, output: 2, cacheRead: 0.1, cacheWrite1h: 2 }))
        .toStrictEqual({ input: 1, output: 2, cache_read: 0.1, cache_write_1h: 2 })
    })

    it.each([
      ["a negative price", { input: -1, output: 15 }],
      ["a string price", { input: "3", output: 15 }],
      ["a bad cache price", { input: 3, output: 15, cache_read: "cheap" }],
      ["an infinite price", { input: Infinity, output: 15 }],
      ["a missing output price", { input: 3 }],
      ["a misspelt key", { input: 3, output: 15, cache_reads: 0.3 }],
      ["a camelCase key", { input: 3, output: 15, cacheRead: 0.3 }],
      ["a bad long-context threshold", {
        input: 3,
        output: 15,
        long_context: { threshold: -1, input: 6, output: 22.5 }
      }]
    ])("refuses %s", (_, value) => {
      expect(Either.isLeft(Schema.decodeUnknownEither(Pricing.ModelPriceSchema)(value))).toBe(true)
    })

    it("refuses a table with one bad entry", () => {
      const result = Schema.decodeUnknownEither(Pricing.PriceTableSchema)({
        "gpt-4o": { input: 2.5, output: 10 },
        "gpt-4": { input: 30, output: -60 }
      })
      expect(Either.isLeft(result)).toBe(true)
    })
  })
})
