/**
 * List prices per model (USD per million tokens), the cost of a call, and the Schema of the
 * per-provider price overrides read from config.
 *
 * The built-in table is taken from LiteLLM's public `model_prices_and_context_window.json`
 * (cross-checked against a mirror of it), as of {@link asOf}. A model name takes the price of its
 * longest matching key: `claude-sonnet-4-5-20250929` is priced as `claude-sonnet-4-5`,
 * `openai/gpt-4o-mini-2024-07-18` as `gpt-4o-mini`. A model with no known price has no cost
 * (`undefined`), never a cost of zero.
 *
 * @example
 * ```ts
 * import { Pricing, Usage } from "@orchestify/providers"
 *
 * // 1,000 prompt tokens of which 200 were read from the cache, 500 generated tokens
 * const usage = Usage.tokens({ inputTokens: 1_000, cacheReadTokens: 200, outputTokens: 500 })
 *
 * // (800 x $3 + 200 x $0.30 + 500 x $15) / 1e6 = $0.00996
 * const usd = Pricing.cost("claude-sonnet-4-5-20250929", usage)
 *
 * // Your own prices (per million tokens) win over the built-in ones
 * const mine = Pricing.cost("my-finetune", usage, { "my-finetune": { input: 1, output: 2 } })
 * ```
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Usage from "./Usage.js"

/**
 * The list price of one model, in USD per million tokens.
 *
 * `cacheRead` and `cacheWrite` default to `input` when absent. `cacheWrite` is the price of a
 * 5-minute cache write, the one {@link cost} charges; `cacheWrite1h` is recorded for reference.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ModelPrice {
  readonly input: number
  readonly output: number
  readonly cacheRead?: number
  /** A 5-minute cache write. */
  readonly cacheWrite?: number
  /** A 1-hour cache write. */
  readonly cacheWrite1h?: number
  /** Prices for the whole call when its prompt is longer than `threshold` tokens. */
  readonly longContext?: {
    /** Prompt tokens (cache reads and writes included) above which these prices apply, e.g. `200_000`. */
    readonly threshold: number
    readonly input: number
    readonly output: number
    readonly cacheRead?: number
    readonly cacheWrite?: number
  }
}

/**
 * Prices by model key (a model name or the prefix of one).
 *
 * @since 0.1.0
 * @category Models
 */
export type PriceTable = Readonly<Record<string, ModelPrice>>

/**
 * The date the built-in prices were taken.
 *
 * @since 0.1.0
 * @category Models
 */
export const asOf: string = "2026-11-27"

const claudeOpus45: ModelPrice = { input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25, cacheWrite1h: 10 }

/**
 * The built-in list prices (USD per million tokens) for current and recent Claude and OpenAI
 * models, from LiteLLM's `model_prices_and_context_window.json` as of {@link asOf}.
 *
 * @since 0.1.0
 * @category Models
 */
export const defaults: PriceTable = {
  "claude-sonnet-5": { input: 2, output: 10, cacheRead: 0.2, cacheWrite: 2.5, cacheWrite1h: 4 },
  "claude-sonnet-4-6": { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75, cacheWrite1h: 6 },
  "claude-sonnet-4-5": {
    input: 3,
    output: 15,
    cacheRead: 0.3,
    cacheWrite: 3.75,
    cacheWrite1h: 6,
    longContext: { threshold: 200_000, input: 6, output: 22.5, cacheRead: 0.6, cacheWrite: 7.5 }
  },
  "claude-opus-4-8": claudeOpus45,
  "claude-opus-4-7": claudeOpus45,
  "claude-opus-4-6": claudeOpus45,
  "claude-opus-4-5": claudeOpus45,
  "claude-opus-4-1": { input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75, cacheWrite1h: 30 },
  "claude-haiku-4-5": { input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25, cacheWrite1h: 2 },
  "claude-3-opus": { input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75, cacheWrite1h: 30 },
  "claude-3-5-sonnet": { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  "claude-3-5-haiku": { input: 0.8, output: 4, cacheRead: 0.08, cacheWrite: 1 },
  "gpt-5": { input: 1.25, output: 10, cacheRead: 0.125 },
  "gpt-5-mini": { input: 0.25, output: 2, cacheRead: 0.025 },
  "gpt-4.1": { input: 2, output: 8, cacheRead: 0.5 },
  "gpt-4.1-mini": { input: 0.4, output: 1.6, cacheRead: 0.1 },
  "gpt-4o": { input: 2.5, output: 10, cacheRead: 1.25 },
  "gpt-4o-mini": { input: 0.15, output: 0.6, cacheRead: 0.075 },
  "o3": { input: 2, output: 8, cacheRead: 0.5 },
  "o4-mini": { input: 1.1, output: 4.4, cacheRead: 0.275 },
  "gpt-4-turbo": { input: 10, output: 30 },
  "gpt-4": { input: 30, output: 60 },
  "gpt-3.5-turbo": { input: 0.5, output: 1.5 }
}

/**
 * Words that, right after a key and a `-`, name a different model rather than a snapshot of the
 * same one (`o3-mini`, `o3-pro`, `gpt-5-nano`, `gpt-4o-realtime-preview`, `o3-deep-research`):
 * such a name does not take the key's price, it has its own or none.
 */
const variantWords: ReadonlySet<string> = new Set([
  "mini",
  "nano",
  "pro",
  "realtime",
  "audio",
  "transcribe",
  "tts",
  "deep"
])

const keyMatches = (name: string, key: string): boolean => {
  if (!name.startsWith(key)) return false
  const rest = name.slice(key.length)
  if (rest === "" || rest.startsWith("@") || rest.startsWith(":")) return true
  if (!rest.startsWith("-")) return false
  const next = rest.slice(1).split(/[-@:]/, 1)[0] ?? ""
  return !variantWords.has(next)
}

const lookupIn = (table: PriceTable, name: string): Option.Option<ModelPrice> => {
  if (Object.hasOwn(table, name)) return Option.fromNullable(table[name])
  let best: string | undefined
  for (const key of Object.keys(table)) {
    if ((best === undefined || key.length > best.length) && keyMatches(name, key)) best = key
  }
  return best === undefined ? Option.none() : Option.fromNullable(table[best])
}

const stripProvider = (model: string): string => model.slice(model.lastIndexOf("/") + 1)

/**
 * Finds the price of a model: overrides first, then the built-in table.
 *
 * A name takes the price of its longest matching key. A key matches when the name is the key, or
 * the key followed by `@` or `:` and anything, or by `-` and a suffix that is not a variant word
 * (`mini`, `nano`, `pro`, ...): `gpt-4o-2024-08-06` is `gpt-4o`, but `gpt-4o-mini` is not, nor is
 * `gpt-4.1` `gpt-4`. A provider prefix (`openai/`, `anthropic/`, `azure/`) is stripped, unless an
 * override matches the full name.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const lookup = (model: string, overrides?: PriceTable): Option.Option<ModelPrice> => {
  const bare = stripProvider(model)
  if (overrides !== undefined) {
    const own = lookupIn(overrides, model)
    if (Option.isSome(own)) return own
    if (bare !== model) {
      const ownBare = lookupIn(overrides, bare)
      if (Option.isSome(ownBare)) return ownBare
    }
  }
  return lookupDefault(bare)
}

/** The built-in table never changes: each name is looked up once (a few hundred names at most). */
const defaultPrices = new Map<string, Option.Option<ModelPrice>>()
const lookupDefault = (name: string): Option.Option<ModelPrice> => {
  let price = defaultPrices.get(name)
  if (price === undefined) {
    price = lookupIn(defaults, name)
    if (defaultPrices.size < 1024) defaultPrices.set(name, price)
  }
  return price
}

const nonNegative = (n: number): number => (n > 0 ? n : 0)

/**
 * The cost in USD of a call at a given price.
 *
 * (input - cacheRead - cacheWrite) x input + cacheRead x cacheRead + cacheWrite x cacheWrite +
 * output x output, per million tokens, a missing cache price being the input price. When the price
 * has a `longContext` tier and the prompt is longer than its threshold, the whole call is charged
 * at the tier's prices. Never negative.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const costWith = (price: ModelPrice, usage: Usage.Tokens): number => {
  const input = nonNegative(usage.inputTokens)
  const tier = price.longContext !== undefined && input > price.longContext.threshold ? price.longContext : price
  const cacheRead = nonNegative(usage.cacheReadTokens)
  const cacheWrite = nonNegative(usage.cacheWriteTokens)
  const uncached = nonNegative(input - cacheRead - cacheWrite)
  const usd = uncached * tier.input +
    cacheRead * (tier.cacheRead ?? tier.input) +
    cacheWrite * (tier.cacheWrite ?? tier.input) +
    nonNegative(usage.outputTokens) * tier.output
  return usd / 1e6
}

/**
 * The cost in USD of a call on a model, or `undefined` when the model has no known price.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const cost = (model: string, usage: Usage.Tokens, overrides?: PriceTable): number | undefined =>
  Option.match(lookup(model, overrides), {
    onNone: () => undefined,
    onSome: (price) => costWith(price, usage)
  })

const PerMillion = Schema.Number.pipe(
  Schema.finite(),
  Schema.nonNegative(),
  Schema.annotations({ description: "USD per million tokens" })
)

const optionalPrice = <K extends string>(key: K) =>
  Schema.optionalWith(PerMillion, { exact: true }).pipe(Schema.fromKey(key))

const strict = { parseOptions: { onExcessProperty: "error" } } as const

const LongContextSchema = Schema.Struct({
  threshold: Schema.Number.pipe(Schema.int(), Schema.positive()),
  input: PerMillion,
  output: PerMillion,
  cacheRead: optionalPrice("cache_read"),
  cacheWrite: optionalPrice("cache_write")
}).annotations(strict)

/**
 * The price of one model as written in config (USD per million tokens, snake_case keys:
 * `input`, `output`, `cache_read`, `cache_write`, `cache_write_1h`, `long_context`), decoding to a
 * {@link ModelPrice}. Prices must be finite and non-negative; unknown keys are refused, so a typo
 * cannot silently drop a price.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ModelPriceSchema = Schema.Struct({
  input: PerMillion,
  output: PerMillion,
  cacheRead: optionalPrice("cache_read"),
  cacheWrite: optionalPrice("cache_write"),
  cacheWrite1h: optionalPrice("cache_write_1h"),
  longContext: Schema.optionalWith(LongContextSchema, { exact: true }).pipe(Schema.fromKey("long_context"))
}).annotations({ identifier: "ModelPrice", ...strict })

/**
 * Price overrides by model key as written in config, decoding to a {@link PriceTable}.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const PriceTableSchema = Schema.Record({ key: Schema.String, value: ModelPriceSchema }).annotations({
  identifier: "PriceTable"
})
