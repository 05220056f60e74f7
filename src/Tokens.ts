/**
 * Counting before the call: how many prompt tokens a request is ({@link count}) and what it can
 * cost at most ({@link forecast}), with the `LLM` in context. Each answer says how it was found
 * (its {@link Method}): the provider's own count, a local tokenizer, or an estimate that errs high.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Message, Tokens } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const request = { messages: [Message.user("Summarise the report")], maxTokens: 512 }
 *   const counted = yield* Tokens.count(request)
 *   const forecast = yield* Tokens.forecast(request)
 *   return `${counted.inputTokens} tokens (${counted.method}), at most $${forecast.maxUsd ?? "?"}`
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as LLM from "./LLM.js"
import type * as LLMError from "./LLMError.js"

/**
 * How a count was found: `"provider"` the provider's own count endpoint (exact), `"tokenizer"` a
 * local BPE tokenizer of the model's encoding (exact for the text, within a few tokens for the
 * chat framing), `"estimate"` a heuristic that errs high (no tokenizer is known for the model).
 *
 * @example
 * ```ts
 * import type { Tokens } from "@orchestify/providers"
 *
 * const exact = (method: Tokens.Method): boolean => method === "provider"
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export type Method = "provider" | "tokenizer" | "estimate"

/**
 * The prompt tokens of a request: system prompt, messages, tool definitions and framing.
 *
 * @example
 * ```ts
 * import type { Tokens } from "@orchestify/providers"
 *
 * const describe = (count: Tokens.TokenCount): string => `${count.inputTokens} (${count.method})`
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface TokenCount {
  readonly inputTokens: number
  readonly method: Method
}

/**
 * The most a request can cost: its prompt tokens, the output cap (the request's `maxTokens`, else
 * the provider's default, else the model's output limit) and the price of both from `Pricing`.
 *
 * @example
 * ```ts
 * import type { Tokens } from "@orchestify/providers"
 *
 * const affordable = (forecast: Tokens.Forecast, leftUsd: number): boolean =>
 *   forecast.maxUsd !== undefined && forecast.maxUsd <= leftUsd
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface Forecast {
  readonly model: string
  readonly inputTokens: number
  readonly maxOutputTokens: number
  /** The input at the input price plus `maxOutputTokens` at the output price; `undefined` for an unpriced model. */
  readonly maxUsd: number | undefined
  readonly method: Method
}

/**
 * How to count: `"local"` (the default) with the local tokenizer or the estimate, sending
 * nothing; `"provider"` with the provider's count endpoint where it has one (Anthropic), else
 * locally.
 *
 * @example
 * ```ts
 * import type { Tokens } from "@orchestify/providers"
 *
 * const exact: Tokens.CountOptions = { method: "provider" }
 * ```
 *
 * @since 0.1.0
 * @category Models
 */
export interface CountOptions {
  readonly method?: "local" | "provider" | undefined
}

/**
 * The prompt tokens of a request for the `LLM` in context (see `LLM.Service.countTokens`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Message, Tokens } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const { inputTokens, method } = yield* Tokens.count(
 *     { messages: [Message.user("Hello")] },
 *     { method: "provider" }
 *   )
 *   return `${inputTokens} (${method})`
 * })
 * ```
 *
 * @since 0.1.0
 * @category Accessors
 */
export const count = (
  request: LLM.CompletionRequest,
  options?: CountOptions
): Effect.Effect<TokenCount, LLMError.LLMError, LLM.LLM> =>
  Effect.flatMap(LLM.LLM, (llm) => llm.countTokens(request, options))

/**
 * The forecast of a request for the `LLM` in context (see `LLM.Service.forecast`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Message, Tokens } from "@orchestify/providers"
 *
 * const program = Effect.gen(function*() {
 *   const forecast = yield* Tokens.forecast({ messages: [Message.user("Hello")], maxTokens: 256 })
 *   return forecast.maxUsd // undefined for an unpriced model
 * })
 * ```
 *
 * @since 0.1.0
 * @category Accessors
 */
export const forecast = (
  request: LLM.CompletionRequest,
  options?: CountOptions
): Effect.Effect<Forecast, LLMError.LLMError, LLM.LLM> =>
  Effect.flatMap(LLM.LLM, (llm) => llm.forecast(request, options))
