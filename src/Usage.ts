/**
 * Token usage in one normalised shape for every provider, and the `Ref`-backed tally each
 * provider keeps.
 *
 * The rule that keeps cached tokens honest: `inputTokens` counts every prompt token, cache reads
 * and writes included (`cacheReadTokens` and `cacheWriteTokens` are parts of it);
 * `outputTokens` counts every generated token, reasoning included (`reasoningTokens` is a part
 * of it).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM } from "@orchestify/providers"
 *
 * const report = Effect.gen(function*() {
 *   const llm = yield* LLM.LLM
 *   const usage = yield* llm.usage
 *   yield* Effect.log(`${usage.calls} calls, ${usage.inputTokens} in, $${usage.costUsd.toFixed(4)}`)
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/**
 * The tokens of one call (or a sum of calls).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Tokens {
  /** Every prompt token, cache reads and writes included. */
  readonly inputTokens: number
  /** Every generated token, reasoning included. */
  readonly outputTokens: number
  /** Prompt tokens read from the provider's cache (a part of `inputTokens`). */
  readonly cacheReadTokens: number
  /** Prompt tokens written to the provider's cache (a part of `inputTokens`). */
  readonly cacheWriteTokens: number
  /** Generated reasoning tokens (a part of `outputTokens`). */
  readonly reasoningTokens: number
}

/**
 * What a provider has spent so far, for one model.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ModelUsage extends Tokens {
  readonly costUsd: number
  /** Calls that reached the provider. */
  readonly calls: number
  /** Of those, calls that failed. */
  readonly failures: number
  /** Calls on a model with no known price: their cost is not in `costUsd`. */
  readonly unpricedCalls: number
  /**
   * Calls whose usage the provider never reported (a stream cut or interrupted before its usage
   * came, a call that timed out, a server that sends none): their tokens and cost are unknown,
   * not zero, and are in none of the totals.
   */
  readonly unmeteredCalls: number
}

/**
 * What a provider has spent so far: totals and a breakdown per model.
 *
 * @since 0.1.0
 * @category Models
 */
export interface TokenUsage extends ModelUsage {
  readonly byModel: Readonly<Record<string, ModelUsage>>
}

/**
 * No tokens.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const emptyTokens: Tokens = {
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  reasoningTokens: 0
}

const emptyModel: ModelUsage = {
  ...emptyTokens,
  costUsd: 0,
  calls: 0,
  failures: 0,
  unpricedCalls: 0,
  unmeteredCalls: 0
}

/**
 * Nothing spent.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const empty: TokenUsage = { ...emptyModel, byModel: {} }

/**
 * Builds a `Tokens` value, missing fields zero.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const tokens = (fields: Partial<Tokens>): Tokens => ({ ...emptyTokens, ...fields })

/**
 * Adds two token counts.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const addTokens = (a: Tokens, b: Tokens): Tokens => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
  cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
  reasoningTokens: a.reasoningTokens + b.reasoningTokens
})

// Written out field by field: on the per-call path, object spreads cost ~100x more here.
const addModel = (a: ModelUsage, b: ModelUsage): ModelUsage => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
  cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
  reasoningTokens: a.reasoningTokens + b.reasoningTokens,
  costUsd: a.costUsd + b.costUsd,
  calls: a.calls + b.calls,
  failures: a.failures + b.failures,
  unpricedCalls: a.unpricedCalls + b.unpricedCalls,
  unmeteredCalls: a.unmeteredCalls + b.unmeteredCalls
})

const withByModel = (m: ModelUsage, byModel: Readonly<Record<string, ModelUsage>>): TokenUsage => ({
  inputTokens: m.inputTokens,
  outputTokens: m.outputTokens,
  cacheReadTokens: m.cacheReadTokens,
  cacheWriteTokens: m.cacheWriteTokens,
  reasoningTokens: m.reasoningTokens,
  costUsd: m.costUsd,
  calls: m.calls,
  failures: m.failures,
  unpricedCalls: m.unpricedCalls,
  unmeteredCalls: m.unmeteredCalls,
  byModel
})

/**
 * Adds two tallies (totals and per-model breakdowns), for summing providers.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const combine = (a: TokenUsage, b: TokenUsage): TokenUsage => {
  const byModel: Record<string, ModelUsage> = { ...a.byModel }
  for (const [model, usage] of Object.entries(b.byModel)) {
    byModel[model] = addModel(byModel[model] ?? emptyModel, usage)
  }
  return withByModel(addModel(a, b), byModel)
}

/**
 * One call as the tally records it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface CallRecord {
  readonly model: string
  /** `undefined` when the provider never reported the call's usage (unknown, not zero). */
  readonly tokens: Tokens | undefined
  /** `undefined` when the model has no known price (or the usage is unknown). */
  readonly costUsd: number | undefined
  readonly failed: boolean
}

/**
 * Adds one call to a tally.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const add = (usage: TokenUsage, call: CallRecord): TokenUsage => {
  const t = call.tokens ?? emptyTokens
  const unmetered = call.tokens === undefined
  const delta: ModelUsage = {
    inputTokens: t.inputTokens,
    outputTokens: t.outputTokens,
    cacheReadTokens: t.cacheReadTokens,
    cacheWriteTokens: t.cacheWriteTokens,
    reasoningTokens: t.reasoningTokens,
    costUsd: call.costUsd ?? 0,
    calls: 1,
    failures: call.failed ? 1 : 0,
    unpricedCalls: !unmetered && call.costUsd === undefined ? 1 : 0,
    unmeteredCalls: unmetered ? 1 : 0
  }
  const byModel: Record<string, ModelUsage> = { ...usage.byModel }
  byModel[call.model] = addModel(usage.byModel[call.model] ?? emptyModel, delta)
  return withByModel(addModel(usage, delta), byModel)
}

/**
 * The tally a provider owns: a `Ref` that every call reaching the provider adds to exactly once.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Tracker {
  readonly ref: Ref.Ref<TokenUsage>
  readonly record: (call: CallRecord) => Effect.Effect<void>
  readonly get: Effect.Effect<TokenUsage>
  readonly reset: Effect.Effect<void>
}

/**
 * Makes an empty tally.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeTracker: Effect.Effect<Tracker> = Effect.map(Ref.make(empty), (ref) => ({
  ref,
  record: (call) => Ref.update(ref, (usage) => add(usage, call)),
  get: Ref.get(ref),
  reset: Ref.set(ref, empty)
}))
